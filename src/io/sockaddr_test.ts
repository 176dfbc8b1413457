// PeerReader and writeSockaddr: the peer a received sockaddr names (cached without allocating per
// datagram, and right when two addresses share a cache slot), and the v4-mapped address of an IPv4 peer.
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

Deno.test("PeerReader: addresses whose hashes collide are each read as themselves", () => {
  // The IPv4 hash keeps 30 bits of address times an odd multiplier: addresses that differ only in the
  // top two bits collide.
  const reader = new PeerReader();
  const a = mustPeer("10.0.0.1", 5000), b = mustPeer("74.0.0.1", 5000);
  for (let i = 0; i < 3; i++) {
    assert.equal(reader.read(sockaddr(a), 0)!.key, a.key);
    assert.equal(reader.read(sockaddr(b), 0)!.key, b.key);
  }
});

Deno.test("PeerReader: IPv6 addresses that differ in any byte are told apart", () => {
  const reader = new PeerReader();
  const base = "fd00:0198:0018:0000:0000:0000:0000:0001".split(":");
  for (let group = 0; group < 8; group++) {
    const other = [...base];
    other[group] = (parseInt(other[group], 16) ^ 0x100).toString(16);
    const a = mustPeer(base.join(":"), 443), b = mustPeer(other.join(":"), 443);
    assert.notEqual(a.key, b.key);
    assert.equal(reader.read(sockaddr(a), 0)!.key, a.key);
    assert.equal(reader.read(sockaddr(b), 0)!.key, b.key, `group ${group}`);
    assert.equal(reader.read(sockaddr(a), 0)!.key, a.key);
  }
});
