import { htmlToText } from "../composer/markdown";
import { isVerificationRequest } from "../crypto/inRoomVerification";
import type { MatrixEvent } from "../matrix/types";
import { str } from "../matrix/types";
import type { Room } from "../sync/room";

/** One line for the room list: who said what last. */
export function lastMessagePreview(room: Room, me: string): string {
  for (let i = room.timeline.length - 1; i >= 0; i--) {
    const event = room.timeline[i];
    if (!event || (event.type !== "m.room.message" && event.type !== "m.room.encrypted")) continue;
    const who = event.sender === me ? "You" : room.displayName(event.sender);
    return `${who}: ${messageText(room, event)}`;
  }
  return room.topic();
}

export function messageText(room: Room, event: MatrixEvent): string {
  if (event.unsigned?.redacted_because) return "Message deleted";
  if (event.type === "m.room.encrypted") return "Encrypted message";
  // The body is a fallback for clients that cannot verify.
  if (isVerificationRequest(event)) return "Asked to verify";
  const { content } = room.displayContent(event);
  const html = str(content.formatted_body);
  if (str(content.format) === "org.matrix.custom.html" && html) return htmlToText(html);
  return str(content.body) ?? "";
}
