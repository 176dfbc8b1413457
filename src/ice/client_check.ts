// Answering a client's connectivity check on the shared port (RFC 8445 §7.3): xRTC is ICE-lite
// towards clients (RFC 8445 §2.5), so the client is always the controlling agent and xRTC never sends
// checks of its own to it. Nothing is bound unless FINGERPRINT and MESSAGE-INTEGRITY verify.
import {
  Attr,
  BINDING_ERROR,
  BINDING_SUCCESS,
  buildStun,
  encodeErrorCode,
  encodeXorAddress,
  getUsername,
  hasAttribute,
  type StunMessage,
  verifyFingerprint,
  verifyIntegrity,
} from "../stun/message.ts";
import type { PeerAddress } from "../io/types.ts";
import { counters } from "../metrics.ts";

export interface CheckVerdict {
  /** The response to send back (success or a signed error). */
  response: Uint8Array;
  /** True when the tuple may be bound to the session. */
  valid: boolean;
  nominate: boolean;
}

/** The ufrag before ":" in USERNAME: xRTC's own (client-facing) ufrag, the demux key. */
export function localUfragOf(msg: StunMessage): string | undefined {
  const u = getUsername(msg);
  if (u === undefined) return undefined;
  const i = u.indexOf(":");
  return i > 0 ? u.slice(0, i) : undefined;
}

/**
 * True when a Binding request to `localUfrag` is authentic: FINGERPRINT, USERNAME (with the client's
 * ufrag when known from its SDP) and MESSAGE-INTEGRITY under `key`, the password the client was given
 * (RFC 8445 §7.3, RFC 8489 §9.2.4). A request that is not is dropped silently and counted here.
 */
export function authenticCheck(
  msg: StunMessage,
  localUfrag: string,
  remoteUfrag: string | undefined,
  key: Uint8Array,
): boolean {
  if (!verifyFingerprint(msg)) {
    counters.inc("stun_drop_no_fingerprint");
    return false;
  }
  const username = getUsername(msg) ?? "";
  const sep = username.indexOf(":");
  if (
    sep < 0 || username.slice(0, sep) !== localUfrag ||
    (remoteUfrag !== undefined && username.slice(sep + 1) !== remoteUfrag)
  ) {
    counters.inc("stun_drop_bad_username");
    return false;
  }
  if (!verifyIntegrity(msg, key)) {
    counters.inc("stun_drop_bad_integrity");
    return false;
  }
  return true;
}

/**
 * Answers an authentic Binding request addressed to `localUfrag` (see authenticCheck). Returns
 * undefined when the request must be dropped silently (counted).
 */
export function answerClientCheck(
  msg: StunMessage,
  from: PeerAddress,
  localUfrag: string,
  remoteUfrag: string | undefined,
  key: Uint8Array,
): CheckVerdict | undefined {
  if (!authenticCheck(msg, localUfrag, remoteUfrag, key)) return undefined;
  // A lite agent is always controlled (RFC 8445 §6.1.1); a peer that also claims controlled is told to
  // switch with 487 (§7.3.1.1).
  if (hasAttribute(msg, Attr.ICE_CONTROLLED)) {
    counters.inc("stun_role_conflicts");
    return {
      response: buildStun({
        type: BINDING_ERROR,
        transactionId: msg.transactionId,
        attributes: [[Attr.ERROR_CODE, encodeErrorCode(487, "Role Conflict")]],
        integrityKey: key,
        fingerprint: true,
      }),
      valid: false,
      nominate: false,
    };
  }
  return {
    response: buildStun({
      type: BINDING_SUCCESS,
      transactionId: msg.transactionId,
      attributes: [[Attr.XOR_MAPPED_ADDRESS, encodeXorAddress(from, msg.transactionId)]],
      integrityKey: key,
      fingerprint: true,
    }),
    valid: true,
    nominate: hasAttribute(msg, Attr.USE_CANDIDATE),
  };
}
