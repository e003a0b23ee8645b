import type { MatrixEvent } from "../matrix/types";
import { str } from "../matrix/types";
import type { Room } from "../sync/room";

export function sameDay(a: number, b: number): boolean {
  const x = new Date(a);
  const y = new Date(b);
  return x.getFullYear() === y.getFullYear() && x.getMonth() === y.getMonth() && x.getDate() === y.getDate();
}

export function dayLabel(ts: number, now = Date.now()): string {
  if (sameDay(ts, now)) return "Today";
  if (sameDay(ts, now - 86_400_000)) return "Yesterday";
  const date = new Date(ts);
  const sameYear = date.getFullYear() === new Date(now).getFullYear();
  return date.toLocaleDateString(undefined, {
    weekday: "long",
    day: "numeric",
    month: "long",
    ...(sameYear ? {} : { year: "numeric" }),
  });
}

export function timeLabel(ts: number): string {
  return new Date(ts).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

/** A sentence for state changes and other events that are not messages; null hides it. */
export function describeStateEvent(room: Room, event: MatrixEvent): string | null {
  const who = room.displayName(event.sender);
  const content = event.content;
  switch (event.type) {
    case "m.room.create":
      return `${who} created the room`;
    case "m.room.name":
      return str(content.name) ? `${who} named the room "${str(content.name)}"` : `${who} removed the room name`;
    case "m.room.topic":
      return str(content.topic) ? `${who} set the topic: ${str(content.topic)}` : `${who} removed the topic`;
    case "m.room.join_rules":
      return `${who} made the room ${str(content.join_rule) === "public" ? "public" : "invite only"}`;
    case "m.room.power_levels":
      return `${who} changed the room's roles`;
    case "m.room.canonical_alias":
      return str(content.alias) ? `${who} set the address to ${str(content.alias)}` : `${who} removed the address`;
    case "m.room.history_visibility":
    case "m.room.guest_access":
      return null;
    case "m.room.member":
      return describeMembership(room, event);
    case "m.room.encryption":
      return `${who} turned on end-to-end encryption`;
    default:
      return null;
  }
}

function describeMembership(room: Room, event: MatrixEvent): string | null {
  const target = event.state_key ?? "";
  const targetName = str(event.content.displayname) ?? room.displayName(target);
  const actor = room.displayName(event.sender);
  const membership = str(event.content.membership);
  const previous = str(event.unsigned?.prev_content?.membership);
  const reason = str(event.content.reason);
  const because = reason ? `: ${reason}` : "";
  switch (membership) {
    case "join":
      return previous === "join" ? null : `${targetName} joined`;
    case "invite":
      return `${actor} invited ${targetName}`;
    case "leave":
      if (event.sender !== target) return previous === "ban" ? `${actor} unbanned ${targetName}` : `${actor} removed ${targetName}${because}`;
      return previous === "invite" ? `${targetName} declined the invitation` : `${targetName} left`;
    case "ban":
      return `${actor} banned ${targetName}${because}`;
    case "knock":
      return `${targetName} asked to join`;
    default:
      return null;
  }
}
