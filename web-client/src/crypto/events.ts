// Turning an `m.room.encrypted` event into what its sender wrote, and saying why one
// could not be. Pure: tested without the wasm.

import type { JsonObject, MatrixEvent } from "../matrix/types";
import { isObject, str } from "../matrix/types";

/** Set by this client only (any copy arriving from the server is removed first). */
export type E2eeMark =
  | { state: "decrypted" }
  | { state: "failed"; reason: string; sessionId?: string };

export const ENCRYPTED = "m.room.encrypted";

/** The Megolm session an encrypted event belongs to, if it names one. */
export function sessionIdOf(event: MatrixEvent): string | undefined {
  return str(event.content.session_id);
}

/**
 * The event as its sender wrote it: the decrypted type and content, the envelope's ID,
 * sender, time and unsigned data. The relation (`m.relates_to`) is kept in the clear by
 * the sender so the server can aggregate it: the clear one counts, as in Element; one
 * found only inside (from an older client) is kept.
 * Null when the decrypted JSON is not an event.
 */
export function withCleartext(envelope: MatrixEvent, clearJson: string): MatrixEvent | null {
  let clear: unknown;
  try {
    clear = JSON.parse(clearJson);
  } catch {
    return null;
  }
  if (!isObject(clear) || typeof clear.type !== "string" || !isObject(clear.content)) return null;
  const content: JsonObject = { ...clear.content };
  const relation = envelope.content["m.relates_to"];
  if (isObject(relation)) content["m.relates_to"] = relation;
  const event: MatrixEvent = {
    event_id: envelope.event_id,
    type: clear.type,
    sender: envelope.sender,
    origin_server_ts: envelope.origin_server_ts,
    content,
    e2ee: { state: "decrypted" },
  };
  if (envelope.unsigned) event.unsigned = envelope.unsigned;
  return event;
}

/** The wasm's `DecryptionErrorCode` numbering, for the ones worth telling apart. */
const MISSING_ROOM_KEY = 0;
const UNKNOWN_MESSAGE_INDEX = 1;

/** A line for the reader on why a message cannot be read. */
export function undecryptableReason(code: number | undefined, withheldCode: string | undefined): string {
  if (withheldCode === "m.unverified") return "The sender does not share keys with unverified devices.";
  if (withheldCode === "m.blacklisted") return "The sender has blocked this device.";
  if (withheldCode) return "The sender's device did not share the key for this message with this device.";
  if (code === MISSING_ROOM_KEY) return "Waiting for the key for this message from the sender's device.";
  if (code === UNKNOWN_MESSAGE_INDEX) return "This device was not sent the key for this message: it was sent before this device joined.";
  return "This message could not be decrypted.";
}

/** Marks an event this client could not decrypt, keeping it as it came. */
export function markUndecryptable(event: MatrixEvent, reason: string): void {
  const sessionId = sessionIdOf(event);
  event.e2ee = sessionId ? { state: "failed", reason, sessionId } : { state: "failed", reason };
}
