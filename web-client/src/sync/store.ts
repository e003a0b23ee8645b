import type { JsonObject, MatrixEvent, SyncResponse } from "../matrix/types";
import { isObject, str } from "../matrix/types";
import { PUSH_RULES_TYPE, levelFromRules } from "../notify/level";
import type { NotificationLevel } from "../notify/level";
import { Room } from "./room";

/** What one sync brought a joined room, for whoever reacts to news (notifications). */
export interface TimelineNews {
  room: Room;
  events: MatrixEvent[];
  /** From the first sync: what was there before this page loaded. */
  initial: boolean;
  highlightGrew: boolean;
}

export type Connection = "connecting" | "live" | "polling" | "offline";

export interface Presence {
  presence: "online" | "unavailable" | "offline";
  lastActiveAgo?: number;
  currentlyActive?: boolean;
  receivedAt: number;
}

/** Everything sync has told us, and a way for views to hear when it changes. */
export class ClientStore {
  readonly rooms = new Map<string, Room>();
  readonly presence = new Map<string, Presence>();
  readonly accountData = new Map<string, JsonObject>();
  nextBatch: string | undefined;
  connection: Connection = "connecting";
  synced = false;
  private listeners = new Set<() => void>();
  private newsListeners = new Set<(news: TimelineNews) => void>();
  private scheduled = false;

  constructor(readonly userId: string) {}

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Coalesces a burst of changes into one re-render. */
  changed(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      for (const listener of this.listeners) listener();
    });
  }

  /** Hears of timeline events as sync delivers them; backfill from /messages is not news. */
  onNews(listener: (news: TimelineNews) => void): () => void {
    this.newsListeners.add(listener);
    return () => this.newsListeners.delete(listener);
  }

  setConnection(connection: Connection): void {
    if (this.connection === connection) return;
    this.connection = connection;
    this.changed();
  }

  room(roomId: string): Room {
    let room = this.rooms.get(roomId);
    if (!room) {
      room = new Room(roomId);
      this.rooms.set(roomId, room);
    }
    return room;
  }

  /** Rooms with something to show, most recently active first; invites on top. */
  sortedRooms(): Room[] {
    return [...this.rooms.values()]
      .filter((room) => room.membership !== "leave")
      .sort((a, b) => {
        if (a.membership !== b.membership) return a.membership === "invite" ? -1 : 1;
        return b.lastActivity - a.lastActivity || a.roomId.localeCompare(b.roomId);
      });
  }

  /** Rooms listed as direct chats in `m.direct`, or invites flagged `is_direct`. */
  isDirect(room: Room): boolean {
    const direct = this.accountData.get("m.direct");
    if (direct) {
      for (const rooms of Object.values(direct)) {
        if (Array.isArray(rooms) && rooms.includes(room.roomId)) return true;
      }
    }
    return room.member(this.userId)?.is_direct === true;
  }

  /** The other person in a direct chat, if there is exactly one. */
  directPartner(room: Room): string | undefined {
    const direct = this.accountData.get("m.direct");
    if (direct) {
      for (const [userId, rooms] of Object.entries(direct)) {
        if (Array.isArray(rooms) && rooms.includes(room.roomId)) return userId;
      }
    }
    const others = [...room.members("join"), ...room.members("invite")].filter((u) => u !== this.userId);
    return others.length === 1 ? others[0] : undefined;
  }

  applySync(sync: SyncResponse): void {
    const join = sync.rooms?.join ?? {};
    const initial = !this.synced;
    const news: TimelineNews[] = [];
    for (const [roomId, update] of Object.entries(join)) {
      const room = this.room(roomId);
      room.membership = "join";
      for (const event of update.state?.events ?? []) room.setState(event);
      const timeline = update.timeline;
      // A room seen for the first time, or a gap, starts a fresh stretch of timeline
      // that pages back from this update's prev_batch.
      const fresh = room.timeline.length === 0 && !room.paginated;
      if (timeline?.limited || fresh) room.resetTimeline(timeline?.prev_batch ?? null);
      room.addEvents(timeline?.events ?? [], "end");
      for (const ephemeral of update.ephemeral?.events ?? []) {
        if (ephemeral.type === "m.typing") {
          const ids = ephemeral.content.user_ids;
          room.typing = Array.isArray(ids) ? ids.filter((u): u is string => typeof u === "string") : [];
          room.version++;
        } else if (ephemeral.type === "m.receipt") {
          room.applyReceipts(ephemeral.content);
        }
      }
      for (const data of update.account_data?.events ?? []) {
        if (data.type === "m.fully_read") room.fullyRead = str(data.content.event_id);
        if (isObject(data.content)) room.accountData.set(data.type, data.content);
      }
      const counts = update.unread_notifications;
      const highlightsBefore = room.highlightCount;
      if (counts) {
        room.notificationCount = counts.notification_count ?? 0;
        room.highlightCount = counts.highlight_count ?? 0;
      }
      const heroes = update.summary?.["m.heroes"];
      if (heroes) room.heroes = heroes;
      room.version++;
      const events = timeline?.events ?? [];
      if (events.length) news.push({ room, events, initial, highlightGrew: room.highlightCount > highlightsBefore });
    }
    for (const [roomId, update] of Object.entries(sync.rooms?.invite ?? {})) {
      const room = this.room(roomId);
      room.membership = "invite";
      for (const event of update.invite_state?.events ?? []) room.setState(event);
      room.lastActivity = Math.max(room.lastActivity, Date.now());
      room.version++;
    }
    for (const [roomId, update] of Object.entries(sync.rooms?.leave ?? {})) {
      const room = this.rooms.get(roomId);
      if (!room) continue;
      room.membership = "leave";
      // The state up to our leaving, so the room can say whether we left, were removed or banned.
      for (const event of [...(update.state?.events ?? []), ...(update.timeline?.events ?? [])]) room.setState(event);
      room.version++;
    }
    for (const event of sync.presence?.events ?? []) {
      if (event.type === "m.presence") this.setPresence(event.sender, event.content);
    }
    for (const data of sync.account_data?.events ?? []) {
      if (isObject(data.content)) this.accountData.set(data.type, data.content);
    }
    this.nextBatch = sync.next_batch;
    this.synced = true;
    this.changed();
    for (const item of news) for (const listener of this.newsListeners) listener(item);
  }

  setPresence(userId: string, content: JsonObject): void {
    const presence = str(content.presence);
    if (presence !== "online" && presence !== "unavailable" && presence !== "offline") return;
    const entry: Presence = { presence, receivedAt: Date.now() };
    if (typeof content.last_active_ago === "number") entry.lastActiveAgo = content.last_active_ago;
    if (typeof content.currently_active === "boolean") entry.currentlyActive = content.currently_active;
    this.presence.set(userId, entry);
    this.changed();
  }

  /** Older events from /messages, newest first as the server sends them. */
  prepend(roomId: string, chunk: MatrixEvent[], end: string | undefined, state: MatrixEvent[] = []): void {
    const room = this.room(roomId);
    for (const event of state) {
      if (event.state_key !== undefined && !room.stateEvent(event.type, event.state_key)) room.setState(event);
    }
    room.addEvents([...chunk].reverse(), "start");
    room.prevBatch = end ?? null;
    this.changed();
  }

  /** The room's setting, from the push rules sync last brought. */
  notificationLevel(room: Room): NotificationLevel {
    return levelFromRules(this.accountData.get(PUSH_RULES_TYPE), room.roomId);
  }

  /** Unread notifications across joined rooms, as each room's setting counts them; muted ones count nothing. */
  totalUnread(): number {
    let total = 0;
    for (const room of this.rooms.values()) {
      if (room.membership !== "join") continue;
      const level = this.notificationLevel(room);
      // A mentions-only room counts what the server highlights, as it notifies for nothing else.
      if (level === "all") total += room.notificationCount;
      else if (level === "mentions") total += room.highlightCount;
    }
    return total;
  }
}
