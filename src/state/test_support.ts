// Records for the state layer's socket-free tests: a Janus session and a live half-proxy handle with every
// field a restore reads.
import type { HandleRecord, JanusSessionRecord } from "./records.ts";

export function sessionRecord(id: string): JanusSessionRecord {
  return {
    v: 1,
    id,
    upstream: "janus",
    backend: "198.18.0.2:8088",
    protocol: "http",
    mode: { icedirect: false, icetcp: false },
    client: "198.19.0.2",
    createdAt: 1_700_000_000_000,
  };
}

export function handleRecord(session: string, id: string): HandleRecord {
  return {
    v: 1,
    session,
    id,
    plugin: "janus.plugin.echotest",
    janusLocal: { ufrag: "xrtcJ", pwd: "xrtc-to-janus-password-1234" },
    janusCandidates: [{
      foundation: "1",
      component: 1,
      transport: "udp",
      priority: 2130706431,
      address: "198.18.0.2",
      port: 20_000,
      type: "host",
      extensions: [],
    }],
    spec: {
      mode: "half",
      id: `${session}/${id}`,
      localUfrag: "xr0001abcd",
      ticket: { slot: 3, generation: 7 },
      janusCandidates: [],
      answeredAt: 1_700_000_000_500,
      clientFacing: { ufrag: "xr0001abcd", pwd: "client-facing-password-123456" },
      janusLocal: { ufrag: "xrtcJ", pwd: "xrtc-to-janus-password-1234" },
      janusRemote: { ufrag: "jnus", pwd: "janus-password-12345678" },
      janusControlling: true,
      tieBreaker: 0xfedcba9876543210n, // above 2^53: must come back exact
    },
    live: {
      shard: 0,
      paths: [{ port: "ice_udp", host: "198.19.0.2", remotePort: 50_000, validated: true, selected: true }],
      janus: { host: "198.18.0.2", port: 20_000 },
      controlling: true,
    },
  };
}
