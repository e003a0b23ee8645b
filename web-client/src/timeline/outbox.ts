import { newTxnId } from "../matrix/client";
import { MatrixError, NetworkError, describeError } from "../matrix/errors";
import type { JsonObject } from "../matrix/types";
import { isObject, str } from "../matrix/types";

export type SendStatus = "sending" | "sent" | "failed";

export interface OutgoingEvent {
  txnId: string;
  roomId: string;
  type: string;
  content: JsonObject;
  status: SendStatus;
  createdTs: number;
  eventId?: string;
  error?: string;
}

export type Sender = (roomId: string, type: string, txnId: string, content: JsonObject) => Promise<string>;

/**
 * Messages on their way out, in order. Each keeps its txn ID for life, so sending it
 * again after a lost answer or a reload gives back the same event instead of a copy.
 * Unsent ones are kept in localStorage and go out when the connection returns.
 */
export class Outbox {
  private items: OutgoingEvent[];
  private busy = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private retryMs = 1000;
  private listeners = new Set<() => void>();

  constructor(
    private readonly storageKey: string,
    private readonly sender: Sender,
  ) {
    this.items = this.load();
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  forRoom(roomId: string): OutgoingEvent[] {
    return this.items.filter((item) => item.roomId === roomId);
  }

  enqueue(roomId: string, type: string, content: JsonObject): OutgoingEvent {
    const item: OutgoingEvent = { txnId: newTxnId(), roomId, type, content, status: "sending", createdTs: Date.now() };
    this.items.push(item);
    this.changed();
    void this.flush();
    return item;
  }

  retry(txnId: string): void {
    const item = this.items.find((i) => i.txnId === txnId);
    if (!item || item.status !== "failed") return;
    item.status = "sending";
    delete item.error;
    this.changed();
    void this.flush();
  }

  discard(txnId: string): void {
    this.items = this.items.filter((i) => i.txnId !== txnId);
    this.changed();
  }

  /** The server's copy arrived through sync: the local echo is no longer needed. */
  confirm(eventId: string, txnId: string | undefined): void {
    const before = this.items.length;
    this.items = this.items.filter((i) => i.eventId !== eventId && (txnId === undefined || i.txnId !== txnId));
    if (this.items.length !== before) this.changed();
  }

  /** Sends whatever waits, oldest first; stops at the first that cannot go out yet. */
  async flush(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (;;) {
        const item = this.items.find((i) => i.status === "sending");
        if (!item) return;
        try {
          item.eventId = await this.sender(item.roomId, item.type, item.txnId, item.content);
          item.status = "sent";
          this.retryMs = 1000;
        } catch (error) {
          if (error instanceof NetworkError) {
            // Offline: keep it queued and try again soon; the engine also calls flush
            // the moment updates flow again.
            this.retryLater();
            return;
          }
          if (error instanceof MatrixError && error.errcode === "M_LIMIT_EXCEEDED") {
            await new Promise((r) => setTimeout(r, error.retryAfterMs ?? 1000));
            continue;
          }
          item.status = "failed";
          item.error = describeError(error);
        } finally {
          this.changed();
        }
      }
    } finally {
      this.busy = false;
    }
  }

  private retryLater(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.flush();
    }, this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 30_000);
  }

  private changed(): void {
    this.save();
    for (const listener of this.listeners) listener();
  }

  private save(): void {
    const unsent = this.items.filter((i) => i.status !== "sent");
    try {
      if (unsent.length) localStorage.setItem(this.storageKey, JSON.stringify(unsent));
      else localStorage.removeItem(this.storageKey);
    } catch {
      // Storage full or blocked: the queue still works for this page's life.
    }
  }

  private load(): OutgoingEvent[] {
    try {
      const value: unknown = JSON.parse(localStorage.getItem(this.storageKey) ?? "[]");
      if (!Array.isArray(value)) return [];
      return value.flatMap((raw): OutgoingEvent[] => {
        if (!isObject(raw) || !isObject(raw.content)) return [];
        const txnId = str(raw.txnId);
        const roomId = str(raw.roomId);
        const type = str(raw.type);
        if (!txnId || !roomId || !type) return [];
        const status: SendStatus = raw.status === "failed" ? "failed" : "sending";
        const item: OutgoingEvent = { txnId, roomId, type, content: raw.content, status, createdTs: Number(raw.createdTs) || Date.now() };
        const error = str(raw.error);
        if (error) item.error = error;
        return [item];
      });
    } catch {
      return [];
    }
  }
}
