import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { hmacSha1Into } from "./hmac_sha1.ts";

Deno.test("HMAC-SHA1 matches node:crypto for keys and messages of every size, in any split", () => {
  const out = new Uint8Array(24);
  for (let n = 0; n < 3_000; n++) {
    // Keys up to 100 bytes (longer than a block are hashed first, RFC 2104 §2), messages to 300.
    const key = crypto.getRandomValues(new Uint8Array(n % 101));
    const msg = crypto.getRandomValues(new Uint8Array((n * 7) % 301));
    const cut1 = Math.floor(Math.random() * (msg.length + 1));
    const cut2 = cut1 + Math.floor(Math.random() * (msg.length - cut1 + 1));
    hmacSha1Into(key, [msg.subarray(0, cut1), msg.subarray(cut1, cut2), msg.subarray(cut2)], out, 2);
    const want = new Uint8Array(createHmac("sha1", key).update(msg).digest());
    assert.deepEqual(out.subarray(2, 22), want, `key ${key.length} bytes, message ${msg.length}`);
    // The same key object again (its pads come from the cache).
    hmacSha1Into(key, [msg], out, 0);
    assert.deepEqual(out.subarray(0, 20), want);
  }
});

Deno.test("HMAC-SHA1: RFC 2202 test cases 1 and 6", () => {
  const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  const out = new Uint8Array(20);
  hmacSha1Into(new Uint8Array(20).fill(0x0b), [new TextEncoder().encode("Hi There")], out);
  assert.equal(hex(out), "b617318655057264e28bc0b6fb378c8ef146be00");
  hmacSha1Into(
    new Uint8Array(80).fill(0xaa),
    [new TextEncoder().encode("Test Using Larger Than Block-Size Key - Hash Key First")],
    out,
  );
  assert.equal(hex(out), "aa4ae5e15272d00e95705637ce8a3b55ed402112");
});
