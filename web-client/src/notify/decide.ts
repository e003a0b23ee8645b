import type { MatrixEvent } from "../matrix/types";
import { isObject } from "../matrix/types";
import type { NotificationLevel } from "./level";

export interface NotifyContext {
  userId: string;
  level: NotificationLevel;
  /** The event came with the first sync (or a backfill): it is history, not news. */
  initial: boolean;
  /** The tab is on screen. */
  visible: boolean;
  /** The event's room is the one open in this tab. */
  roomOpen: boolean;
  /** The server's highlight count for the room grew with the update this event came in. */
  highlightGrew: boolean;
}

/** Whether the event names the user in `m.mentions`, the structured way to mention someone. */
export function mentions(event: MatrixEvent, userId: string): boolean {
  const declared = event.content["m.mentions"];
  if (!isObject(declared)) return false;
  const ids = declared.user_ids;
  return Array.isArray(ids) && ids.includes(userId);
}

/**
 * What a new event deserves: a "mention" or "message" notification, or none. Only
 * messages notify; someone looking at the room already sees it, whatever it says.
 */
export function notificationFor(event: MatrixEvent, ctx: NotifyContext): "mention" | "message" | null {
  if (ctx.initial || event.sender === ctx.userId || ctx.level === "mute") return null;
  if (event.type !== "m.room.message" || event.unsigned?.redacted_because !== undefined) return null;
  // An edit arrives as a new message; the original already notified.
  const rel = event.content["m.relates_to"];
  if (isObject(rel) && rel.rel_type === "m.replace") return null;
  if (ctx.visible && ctx.roomOpen) return null;
  if (mentions(event, ctx.userId) || ctx.highlightGrew) return "mention";
  return ctx.level === "all" ? "message" : null;
}
