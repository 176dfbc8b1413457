import assert from "node:assert/strict";
import { classifyStream } from "./stream_classify.ts";

const bytes = (s: string | number[]) =>
  typeof s === "string" ? new TextEncoder().encode(s) : Uint8Array.from(s);

Deno.test("TCP port classification by first bytes, however few arrived", () => {
  assert.equal(classifyStream(bytes([])), "more");
  assert.equal(classifyStream(bytes([0x16])), "more");
  assert.equal(classifyStream(bytes([0x16, 0x03, 0x01])), "tls");
  assert.equal(classifyStream(bytes([0x16, 0x07])), "reject");
  for (const prefix of ["G", "GE", "GET", "P", "PO", "OPTIO"]) {
    assert.equal(classifyStream(bytes(prefix)), "more", prefix);
  }
  for (const req of ["GET / HTTP/1.1", "POST /janus HTTP/1.1", "OPTIONS * HTTP/1.1"]) {
    assert.equal(classifyStream(bytes(req)), "http");
  }
  assert.equal(classifyStream(bytes("GEX / HTTP/1.1")), "reject");
  // RFC 4571 length (a STUN Binding request of 100 bytes) then the STUN header.
  assert.equal(classifyStream(bytes([0x00])), "more");
  assert.equal(classifyStream(bytes([0x00, 0x64])), "more");
  assert.equal(classifyStream(bytes([0x00, 0x64, 0x00, 0x01])), "ice");
  assert.equal(classifyStream(bytes([0x00, 0x05, 0x00])), "reject"); // shorter than a STUN header
  assert.equal(classifyStream(bytes([0x05, 0xff, 0x00])), "reject"); // first frame too large
  assert.equal(classifyStream(bytes([0x00, 0x64, 0x80])), "reject"); // not STUN
  assert.equal(classifyStream(bytes([0xff, 0xff])), "reject");
});
