// PeerReader and writeSockaddr: the peer a received sockaddr names, and a v4-mapped address written for
// an IPv4 peer of a dual-stack socket.
import assert from "node:assert/strict";
import { PeerReader, SOCKADDR_SLOT, writeSockaddr } from "./sockaddr.ts";
import { mustPeer, type PeerAddress } from "./address.ts";

function sockaddr(peer: PeerAddress, family: 4 | 6 = peer.family): DataView {
  const view = new DataView(new ArrayBuffer(SOCKADDR_SLOT));
  assert.ok(writeSockaddr(view, 0, family, peer) > 0);
  return view;
}

Deno.test("PeerReader: the same address gives the same object; another address another", () => {
  const reader = new PeerReader();
  for (const text of ["198.18.0.1:5000", "[fd00:198:18::1]:5000"]) {
    const [host, port] = text.startsWith("[")
      ? [text.slice(1, text.indexOf("]")), 5000]
      : ["198.18.0.1", 5000];
    const peer = mustPeer(host, port);
    const first = reader.read(sockaddr(peer), 0)!;
    assert.equal(first.key, peer.key);
    assert.equal(reader.read(sockaddr(peer), 0), first, `${text} cached`);
    const other = reader.read(sockaddr(mustPeer(host, 5001)), 0)!;
    assert.equal(other.text, text.replace("5000", "5001"));
  }
});

Deno.test("PeerReader: a v4-mapped IPv6 sockaddr is the IPv4 peer", () => {
  const reader = new PeerReader();
  const peer = mustPeer("198.18.0.7", 4000);
  assert.equal(reader.read(sockaddr(peer, 6), 0), reader.read(sockaddr(peer, 4), 0));
});
