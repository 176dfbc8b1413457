// Classifying a new connection on the one TCP port by its first bytes, however few have arrived.
// A TLS record starts 0x16 0x03 (RFC 8446 §5.1); an HTTP/1 request with a method token; ICE-TCP
// (RFC 6544) with a 16-bit frame length whose first frame is a STUN Binding request (20..1500 bytes).

export type StreamKind = "tls" | "http" | "ice" | "reject" | "more";

const METHODS = ["GET ", "POST ", "PUT ", "DELETE ", "HEAD ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE "];
/** Longest first STUN frame accepted on a new ICE-TCP connection. */
const MAX_FIRST_FRAME = 1500;

export function classifyStream(prefix: Uint8Array): StreamKind {
  if (prefix.length === 0) return "more";
  const b0 = prefix[0];
  if (b0 === 0x16) {
    if (prefix.length < 2) return "more";
    return prefix[1] === 0x03 ? "tls" : "reject";
  }
  if (b0 >= 0x41 && b0 <= 0x5a) {
    const text = String.fromCharCode(...prefix.subarray(0, 8));
    for (const m of METHODS) {
      if (text.startsWith(m)) return "http";
      if (m.startsWith(text)) return "more";
    }
    return "reject";
  }
  if (b0 <= 0x05) {
    if (prefix.length < 3) return "more";
    const length = (b0 << 8) | prefix[1];
    // The first byte of a STUN message is 0x00 or 0x01 (RFC 8489 §5: two zero bits, then the type).
    return length >= 20 && length <= MAX_FIRST_FRAME && prefix[2] <= 0x01 ? "ice" : "reject";
  }
  return "reject";
}
