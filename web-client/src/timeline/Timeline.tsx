import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { useChat } from "../app/context";
import { describeError } from "../matrix/errors";
import type { MatrixEvent } from "../matrix/types";
import { str } from "../matrix/types";
import { isVerificationRequest } from "../crypto/inRoomVerification";
import type { Room } from "../sync/room";
import { useSubscription } from "../ui/hooks";
import { Avatar } from "../ui/Avatar";
import { EventTile } from "./EventTile";
import type { ComposerTarget } from "./EventTile";
import type { OutgoingEvent } from "./outbox";
import { RichBody } from "./RichBody";
import { dayLabel, describeStateEvent, sameDay } from "./format";

const PAGE = 30;

function isRecord(value: unknown, relType: string): boolean {
  return typeof value === "object" && value !== null && (value as Record<string, unknown>).rel_type === relType;
}
/** Messages by one sender closer together than this share one header. */
const GROUP_MS = 5 * 60_000;

function PendingTile(props: { item: OutgoingEvent }) {
  const chat = useChat();
  const { item } = props;
  if (item.type !== "m.room.message") return null;
  return (
    <article class={`event mine pending ${item.status}`} data-txn-id={item.txnId}>
      <div class="gutter" />
      <div class="event-main">
        <RichBody content={item.content} />
        <div class="send-status" role="status">
          {item.status === "sending" ? (
            <span>{chat.store.connection === "offline" ? "Waiting for the connection…" : "Sending…"}</span>
          ) : item.status === "sent" ? (
            <span>Sent</span>
          ) : (
            <>
              <span class="error">Not sent: {item.error}</span>{" "}
              <button type="button" class="link" onClick={() => chat.outbox.retry(item.txnId)}>
                Retry
              </button>{" "}
              <button type="button" class="link" onClick={() => chat.outbox.discard(item.txnId)}>
                Discard
              </button>
            </>
          )}
        </div>
      </div>
    </article>
  );
}

function ReadBy(props: { room: Room; users: string[] }) {
  if (!props.users.length) return null;
  const names = props.users.map((u) => props.room.displayName(u));
  return (
    <div class="read-by" aria-label={`Seen by ${names.join(", ")}`} title={`Seen by ${names.join(", ")}`}>
      {props.users.slice(0, 5).map((u) => (
        <Avatar key={u} id={u} name={props.room.displayName(u)} url={props.room.avatarUrl(u)} size="small" />
      ))}
      <span class="muted small">Seen by {names.join(", ")}</span>
    </div>
  );
}

/** The room's messages: live at the bottom, older ones loaded while scrolling up. */
export function Timeline(props: { room: Room; onCompose: (target: ComposerTarget) => void }) {
  const chat = useChat();
  const { room } = props;
  useSubscription(chat.outbox.subscribe.bind(chat.outbox));
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);
  const heightBeforePrepend = useRef<number | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // Where "new messages" starts, as it was when the room was opened.
  const [marker] = useState<string | undefined>(() => {
    const last = room.timeline.at(-1)?.event_id;
    return room.fullyRead && room.fullyRead !== last && room.has(room.fullyRead) ? room.fullyRead : undefined;
  });

  const loadOlder = async () => {
    if (loading || room.prevBatch === null) return;
    setLoading(true);
    setError(null);
    try {
      const from = room.prevBatch;
      const page = await chat.client.messages(room.roomId, from, PAGE);
      await chat.decryptHistory(room.roomId, page.chunk);
      if (room.prevBatch !== from) return;
      heightBeforePrepend.current = scroller.current?.scrollHeight ?? null;
      chat.store.prepend(room.roomId, page.chunk, page.chunk.length ? page.end : undefined, page.state ?? []);
    } catch (err) {
      setError(describeError(err));
    } finally {
      setLoading(false);
    }
  };

  // Older events went in above: keep what the reader was looking at in place.
  // Newer ones arrived while at the bottom: stay at the bottom.
  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    if (heightBeforePrepend.current !== null) {
      el.scrollTop += el.scrollHeight - heightBeforePrepend.current;
      heightBeforePrepend.current = null;
    } else if (atBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
  });

  // A narrower window or a taller composer must not leave the reader above the newest message.
  useEffect(() => {
    const el = scroller.current;
    if (!el || typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver(() => {
      if (atBottom.current) el.scrollTop = el.scrollHeight;
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, []);

  // Fill the view: with too few events to scroll, nothing would ever ask for more.
  useEffect(() => {
    const el = scroller.current;
    if (el && !loading && !error && room.prevBatch !== null && el.scrollHeight <= el.clientHeight + 50) void loadOlder();
  });

  // Read receipts: the newest event counts as read while it is on screen and the tab is visible.
  useEffect(() => {
    const last = [...room.timeline].reverse().find((e) => e.sender !== chat.userId) ?? room.timeline.at(-1);
    if (!last || !atBottom.current || document.visibilityState !== "visible") return;
    if (room.receipts.get(chat.userId)?.eventId === last.event_id && room.notificationCount === 0) return;
    chat.markRead(room, last.event_id);
  });

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 300) void loadOlder();
  };

  const readers = new Map<string, string[]>();
  for (const [userId, receipt] of room.receipts) {
    if (userId === chat.userId) continue;
    readers.set(receipt.eventId, [...(readers.get(receipt.eventId) ?? []), userId]);
  }

  const items: ComponentChildren[] = [];
  let previous: MatrixEvent | undefined;
  for (const event of room.timeline) {
    if (!previous || !sameDay(previous.origin_server_ts, event.origin_server_ts)) {
      items.push(
        <div class="day-separator" role="separator" key={`day-${event.event_id}`}>
          <span>{dayLabel(event.origin_server_ts)}</span>
        </div>,
      );
      previous = undefined;
    }
    if (isVerificationRequest(event)) {
      // Its body is a fallback for clients without verification; say what it is.
      const whom = str(event.content.to);
      items.push(
        <div class="notice-event" key={event.event_id} data-event-id={event.event_id}>
          {room.displayName(event.sender)} asked to verify {whom ? room.displayName(whom) : "someone"}
        </div>,
      );
    } else if (event.type === "m.room.message" || event.type === "m.sticker" || event.type === "m.room.encrypted") {
      const continuation =
        previous !== undefined &&
        previous.type === "m.room.message" &&
        previous.sender === event.sender &&
        event.origin_server_ts - previous.origin_server_ts < GROUP_MS;
      items.push(<EventTile key={event.event_id} room={room} event={event} continuation={continuation} onCompose={props.onCompose} />);
    } else {
      const text = describeStateEvent(room, event);
      if (text) {
        items.push(
          <div class="notice-event" key={event.event_id} data-event-id={event.event_id}>
            {text}
          </div>,
        );
      }
    }
    const seen = readers.get(event.event_id);
    if (seen) items.push(<ReadBy key={`read-${event.event_id}`} room={room} users={seen} />);
    if (event.event_id === marker) {
      items.push(
        <div class="new-marker" role="separator" key="new-marker">
          <span>New messages</span>
        </div>,
      );
    }
    previous = event;
  }
  // Edits show on their message at once through the store's echo; only new messages get a tile.
  const pending = chat.outbox
    .forRoom(room.roomId)
    .filter((item) => (!item.eventId || !room.has(item.eventId)) && !isRecord(item.content["m.relates_to"], "m.replace"));

  return (
    <div class="timeline" ref={scroller} onScroll={onScroll} aria-label="Messages" role="log" tabIndex={0}>
      <div class="timeline-top">
        {room.prevBatch === null ? (
          <p class="muted">This is the start of the room.</p>
        ) : loading ? (
          <p class="muted" role="status">
            Loading older messages…
          </p>
        ) : (
          <button type="button" class="link" onClick={() => void loadOlder()}>
            Load older messages
          </button>
        )}
        {error ? <p class="error">{error}</p> : null}
      </div>
      {items}
      {pending.map((item) => (
        <PendingTile key={item.txnId} item={item} />
      ))}
    </div>
  );
}

export function TypingLine(props: { room: Room }) {
  const chat = useChat();
  const others = props.room.typing.filter((u) => u !== chat.userId);
  const names = others.map((u) => props.room.displayName(u));
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = "Several people are typing…";
  return (
    <div class="typing-line" aria-live="polite">
      {text}
    </div>
  );
}
