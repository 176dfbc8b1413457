# xRTC as a container: a `deno compile` standalone binary on Debian slim.
#   docker build -t xrtc . && docker run --network host xrtc
# The ICE ports are UDP and TCP; publish them as such (-p 6001:6001/udp -p 6443:6443) or use the host
# network, and set candidate_ips in routes.yml to the address clients reach.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY deno.json main.ts ./
COPY src ./src
COPY html ./html
RUN ./node_modules/.bin/deno task compile

FROM debian:bookworm-slim
RUN useradd --system --home /xrtc xrtc
WORKDIR /xrtc
COPY --from=build /src/dist/xrtc /usr/local/bin/xrtc
COPY routes.yml ./routes.yml
COPY html ./html
USER xrtc
EXPOSE 6001/udp 6443/tcp 6080/tcp
ENTRYPOINT ["/usr/local/bin/xrtc"]
CMD ["--config", "/xrtc/routes.yml"]
