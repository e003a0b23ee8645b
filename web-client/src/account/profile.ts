import type { JsonObject } from "../matrix/types";

/** The profile fields the profile dialog edits: spec keys, and ours in Hearth's namespace. */
export const FIELDS = {
  displayname: "displayname",
  timeZone: "m.tz",
  pronouns: "io.hearth.pronouns",
  bio: "io.hearth.bio",
} as const;

export type EditableField = (typeof FIELDS)[keyof typeof FIELDS];

/**
 * What to send to get from `before` to the form's values: an empty box deletes the
 * field, an unchanged one sends nothing.
 */
export function profileChanges(before: JsonObject, form: Record<EditableField, string>): { set: [EditableField, string][]; remove: EditableField[] } {
  const set: [EditableField, string][] = [];
  const remove: EditableField[] = [];
  for (const key of Object.values(FIELDS)) {
    const value = form[key].trim();
    const old = typeof before[key] === "string" ? before[key] : "";
    if (value === old) continue;
    if (value) set.push([key, value]);
    else if (old) remove.push(key);
  }
  return { set, remove };
}

/** The time now in `timeZone` (an IANA name), or null when the browser does not know it. */
export function timeIn(timeZone: string, now: Date): string | null {
  try {
    return new Intl.DateTimeFormat(undefined, { timeZone, hour: "2-digit", minute: "2-digit" }).format(now);
  } catch {
    return null;
  }
}

/** The IANA zone names this browser knows, for suggestions; old browsers get none. */
export function knownTimeZones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (key: string) => string[] };
  try {
    return intl.supportedValuesOf?.("timeZone") ?? [];
  } catch {
    return [];
  }
}
