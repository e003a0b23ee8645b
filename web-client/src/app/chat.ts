import { ENCRYPTED } from "../crypto/events";
import { Crypto, stripMarks } from "../crypto/machine";
import { MatrixClient } from "../matrix/client";
import { NetworkError } from "../matrix/errors";
import { MediaCache } from "../media/cache";
import type { Session } from "../matrix/client";
import type { JsonObject, MatrixEvent } from "../matrix/types";
import { PUSH_RULES_TYPE, rulesFor } from "../notify/level";
import type { NotificationLevel } from "../notify/level";
import { Notifier } from "../notify/notifier";
import { SyncEngine } from "../sync/engine";
import type { Room } from "../sync/room";
import { ClientStore } from "../sync/store";
import { Outbox } from "../timeline/outbox";

/**
 * One signed-in session: the API client, what sync has told us, the connection, and
 * the queue of outgoing messages. Views read from it and call its actions.
 */
export class Chat {
  readonly client: MatrixClient;
  readonly store: ClientStore;
  readonly engine: SyncEngine;
  readonly outbox: Outbox;
  readonly media: MediaCache;
  readonly notifier: Notifier;
  /** Our own profile, for the sidebar: sync only carries it inside room member events. */
  ownProfile: JsonObject = {};
  /** Whose profile card is open, from a click on a name anywhere; null when none is. */
  profileShown: string | null = null;
  private readonly sentReceipts = new Map<string, string>();
  private readonly typingSent = new Map<string, number>();
  private readonly typingQueue = new Map<string, Promise<void>>();
  /** This device's encryption, once started; null if this browser cannot run it. */
  private cryptoReady: Promise<Crypto | null> = Promise.resolve(null);
  /** "unavailable" when encryption could not start here: encrypted rooms can then be neither read nor written. */
  cryptoState: "starting" | "ready" | "unavailable" = "starting";
  /** Why encryption is unavailable, for the person. */
  cryptoProblem: string | null = null;
  /** Emoji verification with another of one's sessions, once encryption runs. */
  verifier: Crypto["verifier"] | null = null;
  /** The running machine, for views that ask it something (who is verified); null until then. */
  cryptoNow: Crypto | null = null;
  private stopped = false;

  constructor(session: Session, onSessionEnded: () => void) {
    this.client = new MatrixClient(session);
    this.client.onUnknownToken = onSessionEnded;
    this.media = new MediaCache(this.client);
    this.store = new ClientStore(session.userId);
    this.notifier = new Notifier(this.store);
    const forcePolling = localStorage.getItem("hearth.transport") === "poll";
    this.engine = new SyncEngine(this.client, this.store, onSessionEnded, forcePolling, (sync) => this.prepareSync(sync));
    this.outbox = new Outbox(`hearth.outbox.${session.userId}`, (roomId, type, txnId, content) =>
      this.sendEvent(roomId, type, txnId, content),
    );
    // The server's copy of a queued message replaces the local one as it arrives.
    this.store.subscribe(() => {
      for (const item of this.outboxItems()) {
        if (!item.eventId) continue;
        const room = this.store.rooms.get(item.roomId);
        if (room?.has(item.eventId)) this.outbox.confirm(item.eventId, item.txnId);
      }
    });
    this.engine.onOnline(() => void this.outbox.flush());
    this.store.subscribe(() => this.fetchMissingPresence());
    this.store.subscribe(() => this.noticeOwnProfileChanges());
  }

  /**
   * Incremental sync reports presence only when it changes, so someone met in a room
   * joined later would show offline until they next change: ask once for each of them.
   */
  private readonly presenceAsked = new Set<string>();
  private fetchMissingPresence(): void {
    for (const room of this.store.rooms.values()) {
      if (room.membership !== "join") continue;
      const members = room.members("join");
      if (members.length > 100) continue;
      for (const userId of members) {
        if (userId === this.userId || this.store.presence.has(userId) || this.presenceAsked.has(userId)) continue;
        this.presenceAsked.add(userId);
        this.client
          .presence(userId)
          .then((content) => {
            if (!this.store.presence.has(userId)) this.store.setPresence(userId, content);
          })
          .catch(() => undefined);
      }
    }
  }

  get userId(): string {
    return this.client.userId;
  }

  private outboxItems() {
    return [...this.store.rooms.keys()].flatMap((roomId) => this.outbox.forRoom(roomId));
  }

  start(): void {
    this.cryptoReady = Crypto.start(this.client, (keys) => this.onRoomKeys(keys)).then(
      (crypto) => {
        if (this.stopped) {
          crypto.close();
          return null;
        }
        this.cryptoState = "ready";
        crypto.onVerificationChange = () => this.store.changed();
        this.verifier = crypto.verifier;
        this.cryptoNow = crypto;
        this.store.changed();
        return crypto;
      },
      (error: unknown) => {
        console.warn("hearth: end-to-end encryption is unavailable", error);
        this.cryptoState = "unavailable";
        this.cryptoProblem = error instanceof Error ? error.message : String(error);
        this.store.changed();
        return null;
      },
    );
    // Sync waits for the machine: to-device messages (room keys) come only once.
    this.engine.start();
    void this.loadOwnProfile();
    document.addEventListener("visibilitychange", this.onVisibility);
  }

  stop(): void {
    this.stopped = true;
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.engine.stop();
    void this.cryptoReady.then((crypto) => crypto?.close());
    this.media.clear();
  }

  /**
   * A name or picture changed on another device reaches us only as new member events:
   * one that disagrees with what we hold means our copy is stale. Each event is looked
   * at once, so a room-specific name cannot make this ask again and again.
   */
  private readonly ownMemberEventsSeen = new Set<string>();
  private noticeOwnProfileChanges(): void {
    let stale = false;
    for (const room of this.store.rooms.values()) {
      if (room.membership !== "join") continue;
      const event = room.stateEvent("m.room.member", this.userId);
      if (!event || !("event_id" in event) || this.ownMemberEventsSeen.has(event.event_id)) continue;
      this.ownMemberEventsSeen.add(event.event_id);
      const { displayname, avatar_url } = event.content;
      if (displayname !== this.ownProfile.displayname || avatar_url !== this.ownProfile.avatar_url) stale = true;
    }
    if (stale) void this.loadOwnProfile();
  }

  showProfile(userId: string | null): void {
    this.profileShown = userId;
    this.store.changed();
  }

  async loadOwnProfile(): Promise<void> {
    try {
      this.ownProfile = await this.client.profile(this.userId);
      this.store.changed();
    } catch {
      // Only the sidebar's name and picture wait on this; initials stand in.
    }
  }

  private readonly onVisibility = (): void => {
    const presence = document.visibilityState === "visible" ? "online" : "unavailable";
    this.engine.presence(presence).catch(() => undefined);
  };

  /**
   * Saves a room's notification setting as push rules, the way Element does. The rule the
   * new level needs is written before the other is deleted, so going between Mute and
   * Mentions only never passes through All messages. It applies here as soon as the server
   * confirms, and on other devices as sync brings the new `m.push_rules`.
   */
  async setNotificationLevel(room: Room, level: NotificationLevel): Promise<void> {
    const wanted = rulesFor(room.roomId, level);
    for (const kind of ["override", "room"] as const) {
      const rule = wanted[kind];
      if (rule) await this.client.setPushRule(kind, room.roomId, rule);
    }
    for (const kind of ["override", "room"] as const) {
      if (!wanted[kind]) await this.client.deletePushRule(kind, room.roomId);
    }
    this.store.accountData.set(PUSH_RULES_TYPE, await this.client.pushRules());
    room.version++;
    this.store.changed();
  }

  private async prepareSync(sync: Parameters<Crypto["onSync"]>[0]): Promise<void> {
    const crypto = await this.cryptoReady;
    if (crypto) await crypto.onSync(sync);
    else stripMarks(sync);
  }

  /** This device's encryption, once started; null if it could not start. */
  crypto(): Promise<Crypto | null> {
    return this.cryptoReady;
  }

  /** Older events from /messages, encrypted ones decrypted (or marked) as they would be live. */
  async decryptHistory(roomId: string, events: MatrixEvent[]): Promise<void> {
    const crypto = await this.cryptoReady;
    if (crypto) await crypto.decryptAll(roomId, events);
    else for (const event of events) delete event.e2ee;
  }

  /** Room keys arrived: messages that were waiting for them are decrypted again. */
  private onRoomKeys(keys: { roomId: string; sessionId: string }[]): void {
    for (const { roomId, sessionId } of keys) {
      const room = this.store.rooms.get(roomId);
      if (!room) continue;
      const waiting = room.timeline.filter((e) => e.e2ee?.state === "failed" && e.e2ee.sessionId === sessionId);
      for (const event of waiting) {
        void this.cryptoReady.then(async (crypto) => {
          const clear = await crypto?.decrypt(roomId, event);
          if (clear?.e2ee?.state !== "decrypted") return;
          room.replaceDecrypted(clear);
          this.store.changed();
        });
      }
    }
  }

  /**
   * Sends through the outbox's retries: in an encrypted room, encrypted first (the same
   * txn ID on a retry still gives one event). Reactions stay in the clear, as Element
   * sends them: their key and target are readable to the server anyway.
   */
  private async sendEvent(roomId: string, type: string, txnId: string, content: JsonObject): Promise<string> {
    // Whether to encrypt is known only once the room's state is here: a room just made
    // (a new direct chat) may not have come down sync yet.
    const room = await this.roomWithState(roomId);
    if (room.isEncrypted() && type !== "m.reaction") {
      const crypto = await this.cryptoReady;
      if (!crypto) throw new Error("encryption could not start in this browser, so this message was not sent");
      const encrypted = await crypto.encrypt(room, type, content);
      return this.engine.send(roomId, ENCRYPTED, txnId, encrypted);
    }
    return this.engine.send(roomId, type, txnId, content);
  }

  /** The room once sync has brought its state (its create event); NetworkError if it does not come soon. */
  private roomWithState(roomId: string): Promise<Room> {
    const ready = () => {
      const room = this.store.rooms.get(roomId);
      return room?.stateEvent("m.room.create") ? room : undefined;
    };
    const now = ready();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        unsubscribe();
        // The outbox keeps it and tries again, as for any connection trouble.
        reject(new NetworkError("the room has not arrived yet"));
      }, 20_000);
      const unsubscribe = this.store.subscribe(() => {
        const room = ready();
        if (!room) return;
        clearTimeout(timer);
        unsubscribe();
        resolve(room);
      });
    });
  }

  sendMessage(roomId: string, content: JsonObject): void {
    this.outbox.enqueue(roomId, "m.room.message", content);
  }

  react(room: Room, eventId: string, key: string): Promise<unknown> {
    const mine = room.reactions.get(eventId)?.get(key)?.get(this.userId);
    if (mine) return this.client.redact(room.roomId, mine);
    this.outbox.enqueue(room.roomId, "m.reaction", {
      "m.relates_to": { rel_type: "m.annotation", event_id: eventId, key },
    });
    return Promise.resolve();
  }

  /** Marks everything up to `eventId` read, once per event. */
  markRead(room: Room, eventId: string): void {
    if (this.sentReceipts.get(room.roomId) === eventId) return;
    this.sentReceipts.set(room.roomId, eventId);
    this.engine.receipt(room.roomId, eventId).catch(() => this.sentReceipts.delete(room.roomId));
  }

  /** Typing notices, at most one "still typing" every 20 s; the server times them out at 30 s. */
  setTyping(roomId: string, typing: boolean): void {
    const last = this.typingSent.get(roomId);
    if (typing && last !== undefined && Date.now() - last < 20_000) return;
    if (!typing && last === undefined) return;
    if (typing) this.typingSent.set(roomId, Date.now());
    else this.typingSent.delete(roomId);
    // One after another: a "stopped" overtaking a "started" would leave us typing forever.
    const previous = this.typingQueue.get(roomId) ?? Promise.resolve();
    const next = previous
      .then(() => this.engine.typing(roomId, typing))
      .catch(() => {
        if (typing) this.typingSent.delete(roomId);
      });
    this.typingQueue.set(roomId, next);
  }
}
