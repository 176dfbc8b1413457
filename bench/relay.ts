// The bench's bare relay: receive -> send and nothing else, on the same I/O layer xRTC uses, so
// xRTC's figures can be read as ratios to it. Each client source gets its own upstream socket.
//   deno run -A bench/relay.ts <listen port> <peer port> <deno|ffi> [reuseport]   prints "RELAY" when ready
// With "reuseport", several relay processes share the listen port (SO_REUSEPORT, ffi backend): the
// kernel spreads client tuples across them, the ceiling for "every core on the one public port".
import type { DatagramSocket, PeerAddress } from "../src/io/types.ts";
import { createBackend } from "../src/io/backend.ts";

const [listenPort, peerPort] = Deno.args.slice(0, 2).map(Number);
const backend = await createBackend(Deno.args[2] === "ffi" ? "ffi" : "deno");
const peer = backend.address("127.0.0.1", peerPort);
const upstreams = new Map<PeerAddress, DatagramSocket>();
const front = backend.bind(
  { host: "127.0.0.1", port: listenPort, reusePort: Deno.args[3] === "reuseport" },
  (data, from) => {
    let up = upstreams.get(from);
    if (!up) {
      up = backend.bind({ host: "127.0.0.1", port: 0 }, (back) => front.send(back, from));
      upstreams.set(from, up);
    }
    up.send(data, peer);
  },
);
console.log("RELAY");
