// Every ICE timer of xRTC, in one place.
export const TIMING = {
  /** Pacing of connectivity checks on the Janus leg (RFC 8445 §14.2: Ta, 50 ms default). */
  checkIntervalMs: 50,
  /** Retransmission of an unanswered check (RFC 8489 §6.2.1 RTO, kept short on a LAN). */
  checkRetransmitMs: 200,
  /** A Janus leg with no valid pair after this long has failed. */
  janusLegConnectTimeoutMs: 20_000,
  /** Consent checks while media flows (RFC 7675 §5.1: randomised around 5 s). */
  consentIntervalMs: 5_000,
  /** Keepalive when idle (RFC 8445 §11: at least every 15 s). */
  keepaliveIntervalMs: 15_000,
  /** Janus-side consent lost after this long without a response (RFC 7675 §5.1: 30 s). */
  consentLossMs: 30_000,
  /** How often sessions are swept for expiry: every session once per sweep period... */
  sweepIntervalMs: 1_000,
  /** ...a slice at a time, so 10,000 sessions' keepalives never leave in one burst. */
  sweepSlices: 20,
  /** Packets from the client held while the Janus leg comes up. */
  pendingQueueLimit: 256,
} as const;
