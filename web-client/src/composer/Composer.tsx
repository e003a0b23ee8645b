import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { useChat } from "../app/context";
import { str } from "../matrix/types";
import { messageText } from "../rooms/summary";
import type { Room } from "../sync/room";
import type { ComposerTarget } from "../timeline/EventTile";
import { Icon } from "../ui/icons";
import { EmojiPicker } from "./EmojiPicker";
import { UploadPanel } from "./UploadPanel";
import { GifPicker } from "./GifPicker";
import { gifsAvailable } from "./gifs";
import { completeShortcode, shortcodeAt } from "./emoji";
import { buildContent, mentionsIn } from "./content";

export function Composer(props: {
  room: Room;
  target: ComposerTarget | null;
  onTarget: (target: ComposerTarget | null) => void;
  attachment: File | null;
  onAttachment: (file: File | null) => void;
}) {
  const chat = useChat();
  const { room, target } = props;
  const [text, setText] = useState("");
  const [picking, setPicking] = useState(false);
  const [gifsOn, setGifsOn] = useState(false);
  const [pickingGif, setPickingGif] = useState(false);
  const [suggestions, setSuggestions] = useState<Array<readonly [string, string]>>([]);
  const [active, setActive] = useState(0);
  const input = useRef<HTMLTextAreaElement>(null);
  const picker = useRef<HTMLInputElement>(null);
  const idleTimer = useRef<ReturnType<typeof setTimeout> | null>(null);

  // Editing starts from the message as it reads now, in place before anything else is typed.
  useLayoutEffect(() => {
    if (target?.kind === "edit") {
      const { content } = room.displayContent(target.event);
      setText(str(content.body) ?? "");
    }
    input.current?.focus();
  }, [target]);

  useEffect(() => {
    setText("");
    props.onTarget(null);
    props.onAttachment(null);
  }, [room.roomId]);

  useEffect(() => () => chat.setTyping(room.roomId, false), [room.roomId]);

  useEffect(() => {
    void gifsAvailable(chat.client).then(setGifsOn);
  }, []);

  const updateSuggestions = (value: string, caret: number) => {
    const at = shortcodeAt(value, caret);
    setSuggestions(at ? completeShortcode(at.prefix) : []);
    setActive(0);
  };

  const typed = (value: string) => {
    setText(value);
    chat.setTyping(room.roomId, value.trim() !== "");
    if (idleTimer.current) clearTimeout(idleTimer.current);
    idleTimer.current = setTimeout(() => chat.setTyping(room.roomId, false), 10_000);
    updateSuggestions(value, input.current?.selectionStart ?? value.length);
  };

  const insert = (emoji: string, replaceFrom?: number) => {
    const el = input.current;
    const caret = el?.selectionStart ?? text.length;
    const start = replaceFrom ?? caret;
    const next = `${text.slice(0, start)}${emoji}${replaceFrom !== undefined ? " " : ""}${text.slice(caret)}`;
    setText(next);
    setSuggestions([]);
    requestAnimationFrame(() => {
      if (!el) return;
      el.focus();
      const pos = start + emoji.length + (replaceFrom !== undefined ? 1 : 0);
      el.setSelectionRange(pos, pos);
    });
  };

  const complete = (index: number) => {
    const choice = suggestions[index];
    const el = input.current;
    const at = shortcodeAt(text, el?.selectionStart ?? text.length);
    if (choice && at) insert(choice[1], at.start);
  };

  const send = () => {
    // The element, not state: a key pressed right after typing must not see stale text.
    const value = (input.current?.value ?? text).trim();
    if (!value) return;
    const mentions = mentionsIn(value, room, chat.userId, target?.kind === "reply" ? target.event.sender : undefined);
    chat.sendMessage(room.roomId, buildContent(value, target, mentions));
    setText("");
    setSuggestions([]);
    props.onTarget(null);
    chat.setTyping(room.roomId, false);
  };

  // A pasted picture (a screenshot, say) becomes an attachment; pasted text stays text.
  const onPaste = (e: ClipboardEvent) => {
    const file = e.clipboardData?.files[0];
    if (!file) return;
    e.preventDefault();
    props.onAttachment(file);
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (suggestions.length) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        setActive((active + (e.key === "ArrowDown" ? 1 : suggestions.length - 1)) % suggestions.length);
        return;
      }
      if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        complete(active);
        return;
      }
      if (e.key === "Escape") {
        e.preventDefault();
        setSuggestions([]);
        return;
      }
    }
    if (e.key === "Escape" && target) {
      e.preventDefault();
      props.onTarget(null);
      setText("");
      return;
    }
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
      return;
    }
    if (e.key === "ArrowUp" && !text) {
      // Up in an empty composer edits one's last message, as in most chat apps.
      const last = [...room.timeline].reverse().find((ev) => ev.sender === chat.userId && ev.type === "m.room.message" && !ev.unsigned?.redacted_because);
      if (last) {
        e.preventDefault();
        props.onTarget({ kind: "edit", event: last });
      }
    }
  };

  if (room.membership !== "join") return null;
  return (
    <div class="composer">
      {target ? (
        <div class="composer-target" role="status">
          <span>
            {target.kind === "reply" ? "Replying to " : "Editing "}
            <strong>{target.kind === "reply" ? room.displayName(target.event.sender) : "your message"}</strong>:{" "}
            <span class="muted">{messageText(room, target.event).slice(0, 120)}</span>
          </span>
          <button
            type="button"
            class="icon-button"
            aria-label={target.kind === "reply" ? "Cancel reply" : "Cancel edit"}
            onClick={() => {
              props.onTarget(null);
              if (target.kind === "edit") setText("");
            }}
          >
            <Icon name="close" />
          </button>
        </div>
      ) : null}
      {props.attachment ? <UploadPanel key={`${props.attachment.name}:${props.attachment.lastModified}`} room={room} file={props.attachment} onDone={() => props.onAttachment(null)} /> : null}
      {suggestions.length ? (
        <ul class="suggestions" role="listbox" id="emoji-suggestions" aria-label="Emoji suggestions">
          {suggestions.map(([code, emoji], i) => (
            <li
              key={code}
              role="option"
              id={`emoji-suggestion-${i}`}
              aria-selected={i === active}
              class={i === active ? "active" : ""}
              onMouseDown={(e) => {
                e.preventDefault();
                complete(i);
              }}
            >
              {emoji} <span class="muted">:{code}:</span>
            </li>
          ))}
        </ul>
      ) : null}
      <div class="composer-row">
        <button type="button" class="icon-button" aria-label="Insert emoji" aria-expanded={picking} onClick={() => setPicking(!picking)}>
          <Icon name="smile" />
        </button>
        <button type="button" class="icon-button" aria-label="Attach a file" title="Attach a file" onClick={() => picker.current?.click()}>
          <Icon name="attach" />
        </button>
        <input
          ref={picker}
          type="file"
          hidden
          aria-label="File to send"
          onChange={(e) => {
            const file = e.currentTarget.files?.[0];
            if (file) props.onAttachment(file);
            e.currentTarget.value = "";
          }}
        />
        {picking ? (
          <EmojiPicker
            label="Insert emoji"
            onClose={() => setPicking(false)}
            onPick={(emoji) => {
              setPicking(false);
              insert(emoji);
            }}
          />
        ) : null}
        {gifsOn ? (
          <button type="button" class="icon-button gif-button" aria-label="Send a GIF" aria-expanded={pickingGif} onClick={() => setPickingGif(!pickingGif)}>
            GIF
          </button>
        ) : null}
        {pickingGif ? <GifPicker roomId={room.roomId} onClose={() => setPickingGif(false)} /> : null}
        <textarea
          ref={input}
          rows={1}
          value={text}
          aria-label={`Message ${room.name(chat.userId)}`}
          aria-autocomplete="list"
          aria-controls={suggestions.length ? "emoji-suggestions" : undefined}
          aria-activedescendant={suggestions.length ? `emoji-suggestion-${active}` : undefined}
          placeholder="Write a message… (Markdown: **bold**, *italic*, `code`)"
          onInput={(e) => typed(e.currentTarget.value)}
          onKeyDown={onKeyDown}
          onPaste={onPaste}
          onBlur={() => chat.setTyping(room.roomId, false)}
        />
        <button type="button" class="primary send" onClick={send} disabled={!text.trim()}>
          {target?.kind === "edit" ? "Save" : "Send"}
        </button>
      </div>
    </div>
  );
}
