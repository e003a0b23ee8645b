/** A small built-in set: shortcode → emoji, in the picker's order. */
export const EMOJI: ReadonlyArray<readonly [string, string]> = [
  ["thumbsup", "👍"], ["thumbsdown", "👎"], ["heart", "❤️"], ["joy", "😂"], ["smile", "😄"],
  ["grin", "😁"], ["wink", "😉"], ["blush", "😊"], ["slightly_smiling_face", "🙂"], ["upside_down_face", "🙃"],
  ["heart_eyes", "😍"], ["kissing_heart", "😘"], ["thinking", "🤔"], ["neutral_face", "😐"], ["rolling_eyes", "🙄"],
  ["smirk", "😏"], ["sweat_smile", "😅"], ["sob", "😭"], ["cry", "😢"], ["angry", "😠"],
  ["scream", "😱"], ["flushed", "😳"], ["sunglasses", "😎"], ["nerd_face", "🤓"], ["partying_face", "🥳"],
  ["sleeping", "😴"], ["mask", "😷"], ["hugs", "🤗"], ["shushing_face", "🤫"], ["facepalm", "🤦"],
  ["shrug", "🤷"], ["wave", "👋"], ["clap", "👏"], ["pray", "🙏"], ["muscle", "💪"],
  ["ok_hand", "👌"], ["raised_hands", "🙌"], ["point_up", "☝️"], ["eyes", "👀"], ["fire", "🔥"],
  ["sparkles", "✨"], ["star", "⭐"], ["tada", "🎉"], ["rocket", "🚀"], ["100", "💯"],
  ["check", "✅"], ["x", "❌"], ["warning", "⚠️"], ["question", "❓"], ["bulb", "💡"],
  ["coffee", "☕"], ["beer", "🍺"], ["pizza", "🍕"], ["cake", "🍰"], ["sun", "☀️"],
  ["rainbow", "🌈"], ["cat", "🐱"], ["dog", "🐶"], ["fox", "🦊"], ["see_no_evil", "🙈"],
];

const BY_CODE = new Map<string, string>(EMOJI);

/** Shortcodes starting with `prefix`, best (shortest) first. */
export function completeShortcode(prefix: string, limit = 8): Array<readonly [string, string]> {
  const p = prefix.toLowerCase();
  return EMOJI.filter(([code]) => code.startsWith(p))
    .concat(EMOJI.filter(([code]) => !code.startsWith(p) && code.includes(p)))
    .slice(0, limit);
}

/** The `:code` being typed right before the caret, if any (two characters at least). */
export function shortcodeAt(text: string, caret: number): { start: number; prefix: string } | null {
  const match = /(?:^|\s):([a-z0-9_+-]{2,})$/i.exec(text.slice(0, caret));
  if (!match || match[1] === undefined) return null;
  return { start: caret - match[1].length - 1, prefix: match[1] };
}

/** Replaces complete `:code:` shortcodes outside inline code and code blocks. */
export function replaceShortcodes(text: string): string {
  return text
    .split(/(```[\s\S]*?```|`[^`\n]*`)/)
    .map((part, i) => (i % 2 === 1 ? part : part.replace(/:([a-z0-9_+-]+):/gi, (all, code: string) => BY_CODE.get(code.toLowerCase()) ?? all)))
    .join("");
}
