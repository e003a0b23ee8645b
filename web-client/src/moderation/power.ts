import type { JsonObject } from "../matrix/types";
import { isObject } from "../matrix/types";

/** The parts of `m.room.power_levels` a client needs, with the spec's defaults filled in. */
export interface PowerLevels {
  users: Record<string, number>;
  usersDefault: number;
  events: Record<string, number>;
  eventsDefault: number;
  stateDefault: number;
  ban: number;
  kick: number;
  redact: number;
  invite: number;
}

function num(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isInteger(value) ? value : fallback;
}

function numbers(value: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (!isObject(value)) return out;
  for (const [key, level] of Object.entries(value)) if (typeof level === "number") out[key] = level;
  return out;
}

/** `content` undefined means the room has no power levels event: the creator is 100. */
export function parsePowerLevels(content: JsonObject | undefined, creator: string | undefined): PowerLevels {
  if (!content) {
    return {
      users: creator ? { [creator]: 100 } : {},
      usersDefault: 0,
      events: {},
      eventsDefault: 0,
      stateDefault: 0,
      ban: 50,
      kick: 50,
      redact: 50,
      invite: 0,
    };
  }
  return {
    users: numbers(content.users),
    usersDefault: num(content.users_default, 0),
    events: numbers(content.events),
    eventsDefault: num(content.events_default, 0),
    stateDefault: num(content.state_default, 50),
    ban: num(content.ban, 50),
    kick: num(content.kick, 50),
    redact: num(content.redact, 50),
    invite: num(content.invite, 0),
  };
}

export function levelOf(pl: PowerLevels, userId: string, creators: string[] = []): number {
  // Room v12 creators outrank everyone and are not listed in `users`.
  if (creators.includes(userId)) return Number.POSITIVE_INFINITY;
  return pl.users[userId] ?? pl.usersDefault;
}

export function canSendState(pl: PowerLevels, userId: string, type: string, creators: string[] = []): boolean {
  return levelOf(pl, userId, creators) >= (pl.events[type] ?? pl.stateDefault);
}

export function canSend(pl: PowerLevels, userId: string, type: string, creators: string[] = []): boolean {
  return levelOf(pl, userId, creators) >= (pl.events[type] ?? pl.eventsDefault);
}

export type Action = "kick" | "ban" | "redact" | "invite";

export function can(pl: PowerLevels, userId: string, action: Action, creators: string[] = []): boolean {
  return levelOf(pl, userId, creators) >= pl[action];
}

/** Kick, ban and changing someone's level also need a strictly higher level than theirs. */
export function outranks(pl: PowerLevels, actor: string, target: string, creators: string[] = []): boolean {
  if (creators.includes(target)) return false;
  return levelOf(pl, actor, creators) > levelOf(pl, target, creators);
}

export function roleName(level: number): string {
  if (level === Number.POSITIVE_INFINITY) return "Creator";
  if (level >= 100) return "Admin";
  if (level >= 50) return "Moderator";
  if (level === 0) return "User";
  return `Custom (${level})`;
}

/** New content with one user's level changed, keeping every other field as it was. */
export function withUserLevel(content: JsonObject | undefined, userId: string, level: number): JsonObject {
  const base: JsonObject = content ? { ...content } : {};
  const users: Record<string, unknown> = isObject(base.users) ? { ...base.users } : {};
  const usersDefault = num(base.users_default, 0);
  if (level === usersDefault) delete users[userId];
  else users[userId] = level;
  base.users = users;
  return base;
}
