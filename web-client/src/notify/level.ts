import type { JsonObject } from "../matrix/types";

/**
 * Hearth keeps each room's notification setting in room account data until the server
 * has a push rules API; then it moves to push rules and this type goes away.
 */
export const NOTIFICATION_LEVEL_TYPE = "io.hearth.notifications";

export type NotificationLevel = "all" | "mentions" | "mute";

export const LEVELS: Array<[NotificationLevel, string]> = [
  ["all", "All messages"],
  ["mentions", "Mentions only"],
  ["mute", "Mute"],
];

/** Anything unreadable counts as the default, so a bad write elsewhere cannot silence a room. */
export function levelOf(content: JsonObject | undefined): NotificationLevel {
  const level = content?.level;
  return level === "mentions" || level === "mute" ? level : "all";
}
