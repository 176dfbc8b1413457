// The bench's bare relay: receive -> send and nothing else, on the same I/O layer xRTC uses, so
// xRTC's figures can be read as ratios to it. Each client source gets its own upstream socket.
//   deno run -A bench/relay.ts <listen port> <peer port> <deno|ffi> [reuseport]   prints "RELAY" when ready
// With "reuseport", several relay processes share the listen port (SO_REUSEPORT, ffi backend): the
// kernel spreads client tuples across them, the ceiling for "every core on the one public port".
import type { DatagramSocket } from "../src/io/types.ts";
import { type AddressKey, mustPeer } from "../src/io/address.ts";
import { createBackend } from "../src/io/backend.ts";

const [listenPort, peerPort] = Deno.args.slice(0, 2).map(Number);
// The yardstick as it always was: batched sends without GSO, and receives without GRO, like the C relay.
const { backend } = await createBackend(Deno.args[2] === "ffi" ? "ffi" : "deno", { gso: false, gro: false });
const peer = mustPeer("127.0.0.1", peerPort);
const upstreams = new Map<AddressKey, DatagramSocket>();
const front = backend.bind(
  { host: "127.0.0.1", port: listenPort, reusePort: Deno.args[3] === "reuseport" },
  (data, from) => {
    let up = upstreams.get(from.key);
    if (!up) {
      up = backend.bind({ host: "127.0.0.1", port: 0 }, (back) => front.send(back, from));
      upstreams.set(from.key, up);
    }
    up.send(data, peer);
  },
);
console.log("RELAY");
