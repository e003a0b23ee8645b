import type { JsonObject } from "../matrix/types";
import { isObject } from "../matrix/types";

/**
 * Each room's notification setting lives in the user's push rules, as Element keeps it, so
 * other clients, push gateways and the server's own counts all see the same setting.
 */
export const PUSH_RULES_TYPE = "m.push_rules";

export type NotificationLevel = "all" | "mentions" | "mute";

export const LEVELS: Array<[NotificationLevel, string]> = [
  ["all", "All messages"],
  ["mentions", "Mentions only"],
  ["mute", "Mute"],
];

/** The push rules one level takes for a room: `kind` and rule body per rule it needs. */
export interface RoomRules {
  override?: JsonObject;
  room?: JsonObject;
}

/**
 * Mute is an override rule (it outranks the predefined mention rules) matching the room,
 * with no actions; Mentions only is a room rule with no actions, which the predefined
 * override rules for mentions still beat; All messages is neither.
 */
export function rulesFor(roomId: string, level: NotificationLevel): RoomRules {
  if (level === "mute") return { override: { conditions: [{ kind: "event_match", key: "room_id", pattern: roomId }], actions: [] } };
  if (level === "mentions") return { room: { actions: [] } };
  return {};
}

/** Older clients write "dont_notify" where newer ones write no actions; both mean silence. */
function silent(rule: JsonObject): boolean {
  const actions = rule.actions;
  return Array.isArray(actions) && actions.every((a) => a === "dont_notify");
}

function ruleIn(global: JsonObject, kind: "override" | "room", roomId: string): JsonObject | undefined {
  const list = global[kind];
  if (!Array.isArray(list)) return undefined;
  return list.find((r): r is JsonObject => isObject(r) && r.rule_id === roomId && r.enabled !== false);
}

/** An override that silences every event of the room, and nothing else. */
function mutes(rule: JsonObject, roomId: string): boolean {
  const conditions = rule.conditions;
  if (!Array.isArray(conditions) || conditions.length !== 1) return false;
  const [c] = conditions;
  return isObject(c) && c.kind === "event_match" && c.key === "room_id" && c.pattern === roomId && silent(rule);
}

/**
 * A room's level from the `m.push_rules` content (or a GET /pushrules/ answer, the same
 * shape). Rules we do not recognise count as All messages: a rule another client wrote
 * for other reasons must not make a room look muted.
 */
export function levelFromRules(content: JsonObject | undefined, roomId: string): NotificationLevel {
  const global = content?.global;
  if (!isObject(global)) return "all";
  const override = ruleIn(global, "override", roomId);
  if (override && mutes(override, roomId)) return "mute";
  const room = ruleIn(global, "room", roomId);
  if (room && silent(room)) return "mentions";
  return "all";
}
