import { parseMxc, thumbnailPath } from "../media/mxc";
import { useMedia } from "../media/useMedia";
import type { Presence } from "../sync/store";

function hue(text: string): number {
  let hash = 0;
  for (const char of text) hash = (hash * 31 + (char.codePointAt(0) ?? 0)) >>> 0;
  return hash % 360;
}

const HUE_CLASSES = 12;

/** Thumbnail edge in pixels: 2x the largest avatar (4rem), for sharp high-DPI screens. */
const AVATAR_PIXELS = 128;

/** The picture from `url` (an mxc:// URI) when there is one, else initials on a colour picked from the ID. */
export function Avatar(props: { id: string; name: string; url?: unknown; size?: "small" | "large"; presence?: Presence | undefined }) {
  const letters = [...props.name.replace(/^[@#!]/, "").trim()];
  const initial = (letters[0] ?? "?").toUpperCase();
  const colour = `hue-${hue(props.id) % HUE_CLASSES}`;
  const mxc = parseMxc(props.url);
  const { url } = useMedia(mxc ? thumbnailPath(mxc, AVATAR_PIXELS, AVATAR_PIXELS, "crop") : null);
  return (
    <span class={`avatar ${colour} ${props.size ?? ""}`} aria-hidden="true" data-avatar={url ? "image" : "initials"}>
      {url ? <img src={url} alt="" /> : initial}
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
