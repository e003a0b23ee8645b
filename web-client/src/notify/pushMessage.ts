/**
 * What the service worker makes of a Web Push message from Hearth (MSC4174 pushers): the
 * server's validation push (`app_id` and `ack_token`), or one notification with the
 * event's IDs, counts and, for unencrypted rooms, the sender's name, the room's name and
 * a preview of the body. Pure, so the unit tests read it; only `sw.ts` imports it.
 */

export interface AckPush {
  app_id: string;
  ack_token: string;
}

export interface ShownPush {
  title: string;
  body: string;
  /** Folds several notifications from one room into the latest. */
  tag: string;
  roomId: string;
}

const BODY_MAX = 200;

function text(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** The validation push of a new pusher: `{app_id, ack_token}` and no event. */
export function ackOf(data: unknown): AckPush | null {
  const d = record(data);
  if (!d || d.event_id !== undefined) return null;
  const appId = text(d.app_id);
  const token = text(d.ack_token);
  return appId && token ? { app_id: appId, ack_token: token } : null;
}

/** The notification to show for a push, or null for one that is not about an event. */
export function describePush(data: unknown): ShownPush | null {
  const d = record(data);
  const roomId = text(d?.room_id);
  if (!d || !roomId || !text(d.event_id)) return null;
  const type = text(d.type);
  const content = record(d.content);
  if (type === undefined || type === "m.room.encrypted" || !content) {
    // Encrypted (or sent as IDs only): nothing readable came, and nothing is made up.
    return { title: "Hearth", body: "You have a new message", tag: roomId, roomId };
  }
  const sender = text(d.sender_display_name) ?? text(d.sender) ?? "Someone";
  const room = text(d.room_name) ?? text(d.room_alias);
  if (type === "m.room.member" && content.membership === "invite" && d.user_is_target === true) {
    return { title: "Hearth", body: `${sender} invited you to ${room ?? "a room"}`, tag: roomId, roomId };
  }
  const title = room && room !== sender ? `${sender} in ${room}` : sender;
  let body = text(content.body) ?? "New message";
  if (content.msgtype === "m.emote") body = `* ${sender} ${body}`;
  if (body.length > BODY_MAX) body = `${body.slice(0, BODY_MAX - 1)}…`;
  return { title, body, tag: roomId, roomId };
}

/** The client's address of a room, under the worker's scope (the app's root). */
export function roomUrl(scope: string, roomId: string): string {
  return `${scope}#/room/${encodeURIComponent(roomId)}`;
}
