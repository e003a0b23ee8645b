import type { MatrixClient } from "../matrix/client";
import { MatrixError, NetworkError } from "../matrix/errors";
import type { JsonObject, SyncResponse } from "../matrix/types";
import { isObject, str } from "../matrix/types";
import type { ClientStore } from "./store";

/** Timeline windows this size keep the first sync small; older events load on scroll. */
export const FILTER = JSON.stringify({ room: { timeline: { limit: 30 } } });

const WS_PATH = "/_matrix/client/unstable/org.hearth.sync/ws";
/** The request ID of the socket's first frame, which carries the access token. */
const AUTH_REQUEST = "auth";
/** A socket that never opens this many times in a row means long-polling instead. */
const WS_FAILURES_BEFORE_POLLING = 2;
/** While long-polling, try the socket again after this long. */
const WS_RETRY_MS = 60_000;
const POLL_TIMEOUT_MS = 30_000;

interface Pending {
  resolve: (body: JsonObject) => void;
  reject: (error: Error) => void;
}

/**
 * Keeps the store in step with the server: Hearth's WebSocket sync when it works, the
 * standard long-poll `/sync` when it does not. Sends, typing and receipts go over the
 * socket while it is open and over HTTP otherwise.
 */
export class SyncEngine {
  private ws: WebSocket | null = null;
  private wsOpen = false;
  private wsFailures = 0;
  private running = false;
  private mode: "ws" | "poll" = "ws";
  private pollAbort: AbortController | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private backoffMs = 1000;
  private nextRequest = 1;
  private pending = new Map<string, Pending>();
  private onlineListeners = new Set<() => void>();
  /** Syncs are prepared and applied one after another, in the order they came. */
  private delivery: Promise<void> = Promise.resolve();

  /**
   * `prepare` sees each sync before the store does and may change it (encryption
   * feeds it to its machine and decrypts its events there).
   */
  constructor(
    private readonly client: MatrixClient,
    private readonly store: ClientStore,
    private readonly onSessionEnded: () => void,
    private readonly forcePolling = false,
    private readonly prepare: (sync: SyncResponse) => Promise<void> = () => Promise.resolve(),
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    if (this.forcePolling) this.mode = "poll";
    window.addEventListener("online", this.wake);
    this.connect();
  }

  stop(): void {
    this.running = false;
    window.removeEventListener("online", this.wake);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.pollAbort?.abort();
    this.ws?.close(1000);
    this.ws = null;
    this.rejectPending(new NetworkError("stopped"));
  }

  /** Called whenever updates flow again, so queued messages can go out. */
  onOnline(listener: () => void): () => void {
    this.onlineListeners.add(listener);
    return () => this.onlineListeners.delete(listener);
  }

  get transport(): "ws" | "poll" {
    return this.mode;
  }

  private readonly wake = (): void => {
    if (!this.running) return;
    for (const listener of this.onlineListeners) listener();
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      this.connect();
    }
  };

  private connect(): void {
    if (!this.running) return;
    if (this.mode === "ws") this.openSocket();
    else void this.pollLoop();
  }

  private later(ms: number): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, ms);
  }

  private live(connection: "live" | "polling"): void {
    this.backoffMs = 1000;
    const wasLive = this.store.connection === "live" || this.store.connection === "polling";
    this.store.setConnection(connection);
    if (!wasLive) for (const listener of this.onlineListeners) listener();
  }

  private lost(): void {
    this.store.setConnection(this.store.synced ? "offline" : "connecting");
    this.later(this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
  }

  private openSocket(): void {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    // No token in the URL (proxies log URLs): it goes in the socket's first frame.
    const params = new URLSearchParams({ filter: FILTER });
    if (this.store.nextBatch) params.set("since", this.store.nextBatch);
    let ws: WebSocket;
    try {
      ws = new WebSocket(`${scheme}//${location.host}${WS_PATH}?${params}`);
    } catch {
      this.socketFailed(false);
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.wsFailures = 0;
      ws.send(authFrame(this.client.session.accessToken));
    };
    ws.onmessage = (message) => {
      if (typeof message.data !== "string") return;
      let frame: unknown;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (!isObject(frame)) return;
      // Requests go over the socket only once the server has taken its token. A refused
      // token is answered with an error and a 1008 close, which ends the session below.
      if (isAuthAnswer(frame)) {
        if (this.ws === ws) this.wsOpen = true;
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.wsOpen = false;
      this.rejectPending(new NetworkError("the connection closed"));
      if (!this.running) return;
      if (event.code === 1008) {
        this.onSessionEnded();
        return;
      }
      this.socketFailed(opened);
    };
  }

  private socketFailed(opened: boolean): void {
    if (!opened) this.wsFailures++;
    if (this.wsFailures >= WS_FAILURES_BEFORE_POLLING) {
      // The socket is blocked (a proxy without WebSocket support, say): long-poll, and
      // give the socket another chance now and then.
      this.mode = "poll";
      this.wsFailures = 0;
      void this.pollLoop();
      return;
    }
    this.lost();
  }

  private onFrame(frame: JsonObject): void {
    const type = str(frame.type);
    if (type === "sync" && isObject(frame.body)) {
      const ws = this.ws;
      void this.deliver(frame.body as unknown as SyncResponse, () => {
        if (this.ws === ws) this.live("live");
      });
      return;
    }
    const requestId = str(frame.request_id);
    if (type === "error" && requestId === undefined && str(frame.errcode) === "M_UNKNOWN_TOKEN") {
      this.onSessionEnded();
      return;
    }
    if (!requestId) return;
    const pending = this.pending.get(requestId);
    if (!pending) return;
    this.pending.delete(requestId);
    if (type === "response") pending.resolve(isObject(frame.body) ? frame.body : {});
    else pending.reject(new MatrixError(400, frame));
  }

  /** Prepares a sync, then applies it, after every sync that came before it. */
  private deliver(sync: SyncResponse, then: () => void): Promise<void> {
    this.delivery = this.delivery.then(async () => {
      try {
        await this.prepare(sync);
      } catch (error) {
        // Better shown undecrypted than not at all, and a sync that always failed here
        // would stop every later one.
        console.warn("hearth: preparing a sync failed", error);
      }
      if (!this.running) return;
      this.store.applySync(sync);
      then();
    });
    return this.delivery;
  }

  private rejectPending(error: Error): void {
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }

  private async pollLoop(): Promise<void> {
    const startedAt = Date.now();
    while (this.running && this.mode === "poll") {
      if (!this.forcePolling && Date.now() - startedAt > WS_RETRY_MS) {
        this.mode = "ws";
        this.openSocket();
        return;
      }
      this.pollAbort = new AbortController();
      try {
        const response = await this.client.sync(this.store.nextBatch, FILTER, POLL_TIMEOUT_MS, this.pollAbort.signal);
        if (!this.running) return;
        await this.deliver(response, () => this.live("polling"));
      } catch (error) {
        if (!this.running) return;
        if (error instanceof MatrixError && error.errcode === "M_UNKNOWN_TOKEN") {
          this.onSessionEnded();
          return;
        }
        if (error instanceof MatrixError && error.retryAfterMs) {
          await new Promise((r) => setTimeout(r, error.retryAfterMs));
          continue;
        }
        this.lost();
        return;
      }
    }
  }

  /** A request over the open socket; NetworkError when there is none. */
  private viaSocket(frame: JsonObject): Promise<JsonObject> {
    const ws = this.ws;
    if (!ws || !this.wsOpen || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new NetworkError("no socket"));
    }
    const requestId = `r${this.nextRequest++}`;
    return new Promise((resolve, reject) => {
      this.pending.set(requestId, { resolve, reject });
      ws.send(JSON.stringify({ ...frame, request_id: requestId }));
    });
  }

  private socketReady(): boolean {
    return this.ws !== null && this.wsOpen && this.ws.readyState === WebSocket.OPEN;
  }

  /** Idempotent per txn ID over either path: the server keeps one event per (device, txn). */
  async send(roomId: string, eventType: string, txnId: string, content: JsonObject): Promise<string> {
    if (this.socketReady()) {
      try {
        const body = await this.viaSocket({ type: "send", room_id: roomId, event_type: eventType, txn_id: txnId, content });
        const eventId = str(body.event_id);
        if (eventId) return eventId;
      } catch (error) {
        if (!(error instanceof NetworkError)) throw error;
        // The socket died mid-request: the same txn ID over HTTP cannot duplicate it.
      }
    }
    return (await this.client.send(roomId, eventType, txnId, content)).event_id;
  }

  async typing(roomId: string, typing: boolean): Promise<void> {
    if (this.socketReady()) {
      await this.viaSocket({ type: "typing", room_id: roomId, typing, timeout: 30000 });
    } else {
      await this.client.typing(roomId, typing);
    }
  }

  /** Away while the tab is hidden, online while someone looks at it. */
  async presence(presence: "online" | "unavailable"): Promise<void> {
    if (this.socketReady()) await this.viaSocket({ type: "presence", presence });
    else await this.client.setPresence(presence);
  }

  async receipt(roomId: string, eventId: string): Promise<void> {
    await this.client.readMarkers(roomId, eventId);
  }
}

/** The socket's first frame: the access token, which the socket's URL never carries. */
export function authFrame(accessToken: string): string {
  return JSON.stringify({ type: "auth", request_id: AUTH_REQUEST, access_token: accessToken });
}

/** Whether `frame` is the server's acceptance of the socket's auth frame. */
export function isAuthAnswer(frame: JsonObject): boolean {
  return frame.type === "response" && frame.request_id === AUTH_REQUEST;
}
