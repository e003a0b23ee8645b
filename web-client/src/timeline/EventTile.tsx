import { useState } from "preact/hooks";
import { useChat } from "../app/context";
import { EmojiPicker } from "../composer/EmojiPicker";
import { describeError } from "../matrix/errors";
import type { MatrixEvent } from "../matrix/types";
import { str } from "../matrix/types";
import { can, parsePowerLevels } from "../moderation/power";
import { messageText } from "../rooms/summary";
import type { Room } from "../sync/room";
import { creatorsOf, replyTo } from "../sync/room";
import { Avatar } from "../ui/Avatar";
import { Icon } from "../ui/icons";
import { RichBody } from "./RichBody";
import { timeLabel } from "./format";

export interface ComposerTarget {
  kind: "reply" | "edit";
  event: MatrixEvent;
}

function Reactions(props: { room: Room; event: MatrixEvent }) {
  const chat = useChat();
  const byKey = props.room.reactions.get(props.event.event_id);
  if (!byKey || byKey.size === 0) return null;
  return (
    <div class="reactions" aria-label="Reactions">
      {[...byKey.entries()]
        .filter(([, senders]) => senders.size > 0)
        .map(([key, senders]) => {
          const mine = senders.has(chat.userId);
          const names = [...senders.keys()].map((u) => props.room.displayName(u)).join(", ");
          return (
            <button
              type="button"
              key={key}
              class={`reaction ${mine ? "mine" : ""}`}
              aria-pressed={mine}
              title={`${names} reacted with ${key}`}
              data-key={key}
              onClick={() => void chat.react(props.room, props.event.event_id, key)}
            >
              {key} <span class="count">{senders.size}</span>
            </button>
          );
        })}
    </div>
  );
}

function ReplyQuote(props: { room: Room; eventId: string }) {
  const original = props.room.event(props.eventId);
  return (
    <blockquote class="reply-quote">
      {original ? (
        <>
          <strong>{props.room.displayName(original.sender)}</strong> {messageText(props.room, original).slice(0, 200)}
        </>
      ) : (
        <span class="muted">In reply to an earlier message</span>
      )}
    </blockquote>
  );
}

/** One message with its sender, body, edits, replies, reactions and what can be done to it. */
export function EventTile(props: {
  room: Room;
  event: MatrixEvent;
  continuation: boolean;
  onCompose: (target: ComposerTarget) => void;
}) {
  const chat = useChat();
  const { room, event } = props;
  const [picking, setPicking] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const redacted = event.unsigned?.redacted_because !== undefined;
  const redactionReason = redacted ? str(event.unsigned?.redacted_because?.content?.reason) : undefined;
  const { content, edited } = room.displayContent(event);
  const mine = event.sender === chat.userId;
  const pl = parsePowerLevels(room.stateEvent("m.room.power_levels")?.content, room.stateEvent("m.room.create")?.sender);
  const canDelete = !redacted && (mine || can(pl, chat.userId, "redact", creatorsOf(room)));
  const isText = ["m.text", "m.emote", "m.notice"].includes(str(content.msgtype) ?? "");
  const reply = replyTo(event.content);
  const name = room.displayName(event.sender);
  const emote = str(content.msgtype) === "m.emote";
  const undecrypted = event.type === "m.room.encrypted";

  const remove = () => {
    const question = mine ? "Delete this message?" : `Delete ${name}'s message for everyone?`;
    if (!window.confirm(question)) return;
    chat.client.redact(room.roomId, event.event_id).catch((e: unknown) => setError(describeError(e)));
  };

  return (
    <article
      class={`event ${props.continuation ? "continuation" : ""} ${mine ? "mine" : ""}`}
      data-event-id={event.event_id}
      aria-label={`${name} at ${timeLabel(event.origin_server_ts)}`}
    >
      <div class="gutter">{props.continuation ? <time class="hover-time">{timeLabel(event.origin_server_ts)}</time> : <Avatar id={event.sender} name={name} url={room.avatarUrl(event.sender)} />}</div>
      <div class="event-main">
        {props.continuation ? null : (
          <header class="event-header">
            <button type="button" class="sender sender-link" title={event.sender} onClick={() => chat.showProfile(event.sender)}>
              {name}
            </button>
            <time dateTime={new Date(event.origin_server_ts).toISOString()}>{timeLabel(event.origin_server_ts)}</time>
          </header>
        )}
        {reply && !redacted ? <ReplyQuote room={room} eventId={reply} /> : null}
        {redacted ? (
          <div class="body redacted">Message deleted{redactionReason ? `: ${redactionReason}` : ""}</div>
        ) : undecrypted ? (
          <div class="body undecryptable" role="note">
            <Icon name="lock" /> Unable to decrypt this message.{" "}
            <span class="muted">
              {event.e2ee?.state === "failed" ? event.e2ee.reason : chat.cryptoState === "unavailable" ? "Encryption could not start in this browser." : ""}
            </span>
          </div>
        ) : (
          <div class={emote ? "message-content emote" : "message-content"}>
            {emote ? <span class="emote-name">* {name} </span> : null}
            <RichBody content={content} />
            {edited ? <span class="edited muted">(edited)</span> : null}
          </div>
        )}
        {error ? <p class="error small" role="alert">{error}</p> : null}
        <Reactions room={room} event={event} />
      </div>
      {redacted || room.membership !== "join" ? null : (
        <div class="event-actions" role="toolbar" aria-label="Message actions">
          <button type="button" class="icon-button" aria-label="React" title="React" onClick={() => setPicking(!picking)}>
            <Icon name="smile" />
          </button>
          <button type="button" class="icon-button" aria-label="Reply" title="Reply" onClick={() => props.onCompose({ kind: "reply", event })}>
            <Icon name="reply" />
          </button>
          {mine && isText && !undecrypted ? (
            <button type="button" class="icon-button" aria-label="Edit" title="Edit" onClick={() => props.onCompose({ kind: "edit", event })}>
              <Icon name="edit" />
            </button>
          ) : null}
          {canDelete ? (
            <button type="button" class="icon-button danger" aria-label="Delete" title="Delete" onClick={remove}>
              <Icon name="trash" />
            </button>
          ) : null}
          {picking ? (
            <EmojiPicker
              label="Pick a reaction"
              onClose={() => setPicking(false)}
              onPick={(emoji) => {
                setPicking(false);
                void chat.react(room, event.event_id, emoji);
              }}
            />
          ) : null}
        </div>
      )}
    </article>
  );
}
