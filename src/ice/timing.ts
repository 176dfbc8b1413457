// Every ICE timer and per-session bound of xRTC, in one place. Connection deadlines of the TCP and
// HTTP front door are configuration (routes.yml, config/types.ts); these are protocol constants.
export const TIMING = {
  /** Pacing of connectivity checks on the Janus leg, and the media plane's tick (RFC 8445 §14.2: Ta). */
  checkIntervalMs: 50,
  /** Retransmission of an unanswered check (RFC 8489 §6.2.1 RTO, kept short: Janus is on a LAN). */
  checkRetransmitMs: 200,
  /** Transmissions of one check before its pair fails (RFC 8489 §6.2.1 Rc, spread over ~5 s). */
  maxCheckAttempts: 25,
  /** A Janus leg with no valid pair after this long has failed. */
  janusLegConnectTimeoutMs: 20_000,
  /** Consent checks while media flows (RFC 7675 §5.1: randomised around 5 s). */
  consentIntervalMs: 5_000,
  /** Janus-side consent lost after this long without a response while media flows (RFC 7675 §5.1: 30 s). */
  consentLossMs: 30_000,
  /** The negotiator's sweep of expired reservations. */
  sweepIntervalMs: 1_000,
  /** The maintenance tick: the live sessions whose consent check, keepalive or consent timeout has come
   * are maintained (due_schedule.ts), the others are not touched. Each tick costs wakeups besides its work
   * (the shard's thread, the pool thread it waits through while no media flows, the peers its datagrams
   * reach), and with 10,000 sessions held one is due every tick: packets that came then were the slow
   * ones, in the tick's rhythm, for xRTC and for a relay beside it alike. The bench's held step (load in
   * C) gave an added p99 of 0.19-0.23 ms at 5 ms, 0.14-0.20 at 20 ms and 0.17-0.22 at 50 ms, whose
   * batches are larger; a 20 ms tick carries about 13 keepalives. */
  maintenanceTickMs: 20,
  /** A live session is maintained at least this often, even with nothing due (a backstop: a due time
   * moves earlier only on the events that report it). Longer than the longest keepalive interval, so an
   * idle leg is visited once per keepalive. */
  maintenanceMaxIntervalMs: 20_000,
  /** When many sessions fall due together (a restore, a burst of set-ups), a tick takes at most
   * sessions x tick / this of them, so they are spread over about this long. */
  maintenanceSpreadMs: 1_000,
  /** Packets from the client held while the Janus leg comes up. */
  pendingQueueLimit: 256,
  /** Packets from Janus held while the client's first address is being validated. */
  toClientQueueLimit: 64,
  /** Validation of a client address before it gets media (a round trip a forged source cannot
   * complete): retransmitted after this long... */
  validationRetransmitMs: 250,
  /** ...this many times in all... */
  validationAttempts: 4,
  /** ...and after a failure, not tried again from that address for this long (bounds what xRTC sends to
   * an address that did not ask for it). */
  validationBackoffMs: 5_000,
  /** Client transport addresses one session keeps (a client uses a few: interfaces, families, UDP and
   * TCP); the least recently checked one goes to make room. */
  maxPathsPerSession: 64,
  /** Relayed STUN transactions of a full-proxy session remembered to route responses back, and how long. */
  maxRelayedTransactions: 256,
  relayedTransactionTtlMs: 10_000,
  /** An ICE-TCP connection without an authentic check within this long is closed (RFC 6544 leaves it to
   * the implementation; a client sends its first check at once). */
  iceTcpFirstCheckMs: 30_000,
  /** A negotiated session no client has claimed with an authentic check is ended after the consent
   * timeout; a reserved slot whose offer Janus never answered is freed after this long. */
  reservationTimeoutMs: 30_000,
} as const;

/** Janus announces a handful of candidates; more than this per session is not kept. */
export const MAX_JANUS_CANDIDATES = 32;
