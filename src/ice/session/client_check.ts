// The client's connectivity checks on the shared port (RFC 8445 §7.3), and xRTC's own checks to a client
// address before it gets media. xRTC is ICE-lite towards clients (RFC 8445 §2.5): the client is always
// the controlling agent. Nothing is bound unless FINGERPRINT and MESSAGE-INTEGRITY verify.
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
} from "../../stun/message.ts";
import type { PeerAddress } from "../../io/address.ts";
import { drop } from "../../telemetry/catalog.ts";
import { candidatePriority } from "../../sdp/candidate.ts";
import { buildCheck } from "../check.ts";

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
    drop.check_no_fingerprint.inc();
    return false;
  }
  const username = getUsername(msg) ?? "";
  const sep = username.indexOf(":");
  if (
    sep < 0 || username.slice(0, sep) !== localUfrag ||
    (remoteUfrag !== undefined && username.slice(sep + 1) !== remoteUfrag)
  ) {
    drop.check_bad_username.inc();
    return false;
  }
  if (!verifyIntegrity(msg, key)) {
    drop.check_bad_integrity.inc();
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

const VALIDATION_PRIORITY = candidatePriority(126, 65535, 1);

/** xRTC's own Binding request to a client address (RFC 8445 §7.2.2 form, xRTC controlled): USERNAME
 * "<client ufrag>:<xRTC ufrag>", signed with the client's password. Only the client can answer it
 * authentically, so an answer proves the address wants this session's media. */
export function validationCheck(
  clientUfrag: string,
  localUfrag: string,
  clientKey: Uint8Array,
  tieBreaker: bigint,
  transactionId: Uint8Array,
): Uint8Array {
  return buildCheck({
    receiverUfrag: clientUfrag,
    senderUfrag: localUfrag,
    key: clientKey,
    priority: VALIDATION_PRIORITY,
    controlling: false,
    tieBreaker,
    transactionId,
  });
}

/** True when a response to xRTC's validation check is authentic (FINGERPRINT, and MESSAGE-INTEGRITY
 * under the client's password). */
export function authenticResponse(msg: StunMessage, clientKey: Uint8Array): boolean {
  return msg.type === BINDING_SUCCESS && verifyFingerprint(msg) && verifyIntegrity(msg, clientKey);
}
