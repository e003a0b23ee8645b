import type { Presence } from "../sync/store";

function hue(text: string): number {
  let hash = 0;
  for (const char of text) hash = (hash * 31 + (char.codePointAt(0) ?? 0)) >>> 0;
  return hash % 360;
}

const HUE_CLASSES = 12;

/** Initials on a colour picked from the ID, until avatars can be fetched from media. */
export function Avatar(props: { id: string; name: string; size?: "small" | "large"; presence?: Presence | undefined }) {
  const letters = [...props.name.replace(/^[@#!]/, "").trim()];
  const initial = (letters[0] ?? "?").toUpperCase();
  const colour = `hue-${hue(props.id) % HUE_CLASSES}`;
  return (
    <span class={`avatar ${colour} ${props.size ?? ""}`} aria-hidden="true">
      {initial}
      {props.presence ? <PresenceDot presence={props.presence} /> : null}
    </span>
  );
}

export function presenceLabel(presence: Presence | undefined): string {
  if (!presence) return "offline";
  return presence.presence === "unavailable" ? "away" : presence.presence;
}

export function PresenceDot(props: { presence: Presence | undefined }) {
  const label = presenceLabel(props.presence);
  return <span class={`presence-dot ${label}`} title={label} data-presence={label} />;
}
