// Verification of another person happens in a room they share (the spec's in-room
// verification): the request is an `m.room.message` whose msgtype is
// `m.key.verification.request`, the rest are `m.key.verification.*` events relating to it.
// Pure: which timeline events belong to it, and whether a request is one to answer.

import type { MatrixEvent } from "../matrix/types";
import { str } from "../matrix/types";

export const VERIFICATION_REQUEST = "m.key.verification.request";

/** A request to verify, sent as a room message. */
export function isVerificationRequest(event: MatrixEvent): boolean {
  return event.type === "m.room.message" && str(event.content.msgtype) === VERIFICATION_REQUEST;
}

/** An event the crypto machine takes as part of an in-room verification. */
export function isVerificationEvent(event: MatrixEvent): boolean {
  if (event.state_key !== undefined || event.unsigned?.redacted_because) return false;
  return event.type.startsWith("m.key.verification.") || isVerificationRequest(event);
}

/** A request from someone else addressed to this user: one to show. */
export function isRequestFor(event: MatrixEvent, userId: string): boolean {
  return isVerificationRequest(event) && event.sender !== userId && str(event.content.to) === userId;
}

/** The event as the machine reads it (the decrypted form, with its room). */
export function verificationEventJson(roomId: string, event: MatrixEvent): string {
  return JSON.stringify({
    event_id: event.event_id,
    type: event.type,
    sender: event.sender,
    origin_server_ts: event.origin_server_ts,
    content: event.content,
    room_id: roomId,
  });
}
