import type { JsonObject } from "../matrix/types";
import type { Room } from "../sync/room";
import type { ComposerTarget } from "../timeline/EventTile";
import { replaceShortcodes } from "./emoji";
import { composeMessage } from "./markdown";

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Who the text mentions, for `m.mentions`: members named by user ID, as `@name`, or
 * addressed as `name:` at the start, plus the author of the message replied to.
 */
export function mentionsIn(text: string, room: Room, me: string, replyTarget?: string): string[] {
  const found = new Set<string>();
  for (const userId of room.members("join")) {
    if (userId === me) continue;
    const name = escapeRegExp(room.displayName(userId));
    const byName = new RegExp(`(?:^${name}:|(?:^|\\s)@${name}(?!\\w))`, "i");
    if (text.includes(userId) || byName.test(text)) found.add(userId);
  }
  if (replyTarget && replyTarget !== me) found.add(replyTarget);
  return [...found].sort();
}

/** What to send for the composer's text, as a new message, a reply or an edit. */
export function buildContent(text: string, target: ComposerTarget | null, mentions: string[] = []): JsonObject {
  const emote = text.startsWith("/me ");
  const message = composeMessage(replaceShortcodes(emote ? text.slice(4) : text), emote ? "m.emote" : "m.text");
  // Always present, so receivers know mentions are explicit and do not guess from the text.
  const mentioned = { user_ids: mentions };
  if (target?.kind === "edit") {
    const fallback: JsonObject = { ...message, body: `* ${message.body}` };
    if (message.formatted_body !== undefined) fallback.formatted_body = `* ${message.formatted_body}`;
    return {
      ...fallback,
      "m.mentions": mentioned,
      "m.new_content": { ...message, "m.mentions": mentioned },
      "m.relates_to": { rel_type: "m.replace", event_id: target.event.event_id },
    };
  }
  if (target?.kind === "reply") {
    return { ...message, "m.mentions": mentioned, "m.relates_to": { "m.in_reply_to": { event_id: target.event.event_id } } };
  }
  return { ...message, "m.mentions": mentioned };
}
