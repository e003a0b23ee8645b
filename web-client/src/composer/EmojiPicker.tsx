import { useEffect, useRef } from "preact/hooks";
import { EMOJI } from "./emoji";

/** A grid of the built-in emoji; arrow keys move, Enter picks, Escape closes. */
export function EmojiPicker(props: { onPick: (emoji: string) => void; onClose: () => void; label: string }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    ref.current?.querySelector("button")?.focus();
    const close = (e: MouseEvent) => {
      if (ref.current && !ref.current.contains(e.target as Node)) props.onClose();
    };
    document.addEventListener("mousedown", close);
    return () => document.removeEventListener("mousedown", close);
  }, []);
  const onKey = (e: KeyboardEvent) => {
    if (e.key === "Escape") {
      e.stopPropagation();
      props.onClose();
      return;
    }
    const buttons = [...(ref.current?.querySelectorAll("button") ?? [])];
    const index = buttons.indexOf(document.activeElement as HTMLButtonElement);
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: 8, ArrowUp: -8 }[e.key];
    if (step !== undefined && index >= 0) {
      e.preventDefault();
      buttons[Math.max(0, Math.min(buttons.length - 1, index + step))]?.focus();
    }
  };
  return (
    <div class="emoji-picker" role="dialog" aria-label={props.label} ref={ref} onKeyDown={onKey}>
      {EMOJI.map(([code, emoji]) => (
        <button type="button" key={code} title={`:${code}:`} aria-label={code.replace(/_/g, " ")} data-emoji={emoji} onClick={() => props.onPick(emoji)}>
          {emoji}
        </button>
      ))}
    </div>
  );
}
