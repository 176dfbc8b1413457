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
# A fixed uid: Kubernetes' runAsUser (deploy/k8s/) names it.
RUN groupadd --system --gid 10001 xrtc && useradd --system --uid 10001 --gid 10001 --home /xrtc xrtc \
  && mkdir -p /xrtc/state && chown xrtc /xrtc/state
WORKDIR /xrtc
COPY --from=build /src/dist/xrtc /usr/local/bin/xrtc
COPY routes.yml ./routes.yml
COPY html ./html
# options.state_dir: live calls survive a restart of the container when this outlives it.
VOLUME /xrtc/state
USER xrtc
# The admin listener (6090) is loopback in the shipped routes.yml: publish it only after binding it
# elsewhere and setting a token.
EXPOSE 6001/udp 6443/tcp 6080/tcp
# The first SIGTERM drains (options.drain_timeout); give it the grace period you want calls to have.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/xrtc"]
CMD ["--config", "/xrtc/routes.yml"]
