import { str } from "../matrix/types";
import type { MatrixEvent } from "../matrix/types";
import type { ClientStore, TimelineNews } from "../sync/store";
import { notificationFor } from "./decide";

const BODY_MAX = 200;

/** The Notification API, where the browser has one (not in every webview, nor in insecure contexts on some). */
export function notificationsSupported(): boolean {
  return typeof window !== "undefined" && "Notification" in window;
}

/** Shows browser notifications for news that the notification rules let through. */
export class Notifier {
  /** The room open in this tab, if any; its news is on screen already. */
  openRoom: string | null = null;

  /** Listens for as long as the store lives: both belong to one signed-in session. */
  constructor(private readonly store: ClientStore) {
    store.onNews((news) => this.hear(news));
  }

  private hear(news: TimelineNews): void {
    if (!notificationsSupported() || Notification.permission !== "granted") return;
    const { room } = news;
    const ctx = {
      userId: this.store.userId,
      level: this.store.notificationLevel(room),
      initial: news.initial,
      visible: document.visibilityState === "visible",
      roomOpen: this.openRoom === room.roomId,
      highlightGrew: false,
    };
    // A higher highlight count is one more mention somewhere in this batch; it is put
    // on the newest message from someone else, the likeliest to have caused it.
    const lastFromOthers = [...news.events].reverse().find((e) => e.sender !== this.store.userId && e.type === "m.room.message");
    for (const event of news.events) {
      const kind = notificationFor(event, { ...ctx, highlightGrew: news.highlightGrew && event === lastFromOthers });
      if (kind) this.show(event, room.roomId);
    }
  }

  private show(event: MatrixEvent, roomId: string): void {
    const room = this.store.rooms.get(roomId);
    if (!room) return;
    const sender = room.displayName(event.sender);
    const roomName = room.name(this.store.userId);
    const direct = this.store.isDirect(room);
    const title = direct || roomName === sender ? sender : `${sender} (${roomName})`;
    let body = str(event.content.body) ?? "";
    if (event.content.msgtype === "m.emote") body = `* ${sender} ${body}`;
    if (body.length > BODY_MAX) body = `${body.slice(0, BODY_MAX - 1)}…`;
    let notification: Notification;
    try {
      // The tag folds several notifications from one room into the latest.
      notification = new Notification(title, { body, tag: roomId });
    } catch {
      // Some browsers allow notifications only from a service worker; there is none here.
      return;
    }
    notification.onclick = () => {
      window.focus();
      location.hash = `#/room/${encodeURIComponent(roomId)}`;
      notification.close();
    };
  }
}
