// A connectivity check (RFC 8445 §7.2.2): a Binding request with USERNAME "<receiver's ufrag>:<sender's
// ufrag>", PRIORITY, the sender's role with its tie-breaker (§7.1.3), USE-CANDIDATE when nominating
// (§8.1.1), signed with the receiver's password (short-term credentials, RFC 8489 §9.1) and with a
// FINGERPRINT. xRTC's own agent builds its checks to Janus here; the test and bench clients build theirs.
import {
  Attr,
  BINDING_REQUEST,
  buildStun,
  encodeString,
  encodeUint32,
  encodeUint64,
  randomTransactionId,
} from "../stun/message.ts";

export interface CheckOptions {
  receiverUfrag: string;
  senderUfrag: string;
  /** The receiver's password, encoded: the MESSAGE-INTEGRITY key. */
  key: Uint8Array;
  priority: number;
  controlling: boolean;
  tieBreaker: bigint;
  useCandidate?: boolean;
  /** A fresh random one when not given. */
  transactionId?: Uint8Array;
}

export function buildCheck(o: CheckOptions): Uint8Array {
  const attributes: Array<[number, Uint8Array]> = [
    [Attr.USERNAME, encodeString(`${o.receiverUfrag}:${o.senderUfrag}`)],
    [Attr.PRIORITY, encodeUint32(o.priority)],
    [o.controlling ? Attr.ICE_CONTROLLING : Attr.ICE_CONTROLLED, encodeUint64(o.tieBreaker)],
  ];
  if (o.useCandidate) attributes.push([Attr.USE_CANDIDATE, new Uint8Array(0)]);
  return buildStun({
    type: BINDING_REQUEST,
    transactionId: o.transactionId ?? randomTransactionId(),
    attributes,
    integrityKey: o.key,
    fingerprint: true,
  });
}
