import { describe, expect, it } from "vitest";
import type { JsonObject, MatrixEvent, SyncResponse } from "../../src/matrix/types";
import type { NotifyContext } from "../../src/notify/decide";
import { notificationFor } from "../../src/notify/decide";
import { levelOf } from "../../src/notify/level";
import type { TimelineNews } from "../../src/sync/store";
import { ClientStore } from "../../src/sync/store";

const ME = "@alice:hs";
const BOB = "@bob:hs";

let n = 0;
function message(sender: string, body: string, extra: JsonObject = {}): MatrixEvent {
  n++;
  return { event_id: `$${n}`, sender, type: "m.room.message", content: { msgtype: "m.text", body, ...extra }, origin_server_ts: n };
}

/** Bob's message in a room Alice has open, in a hidden tab: the usual case that notifies. */
const base: NotifyContext = { userId: ME, level: "all", initial: false, visible: false, roomOpen: true, highlightGrew: false };

describe("notificationFor", () => {
  it("notifies of others' messages while the tab is hidden", () => {
    expect(notificationFor(message(BOB, "hi"), base)).toBe("message");
  });

  it("never notifies of one's own messages, even mentioning oneself", () => {
    expect(notificationFor(message(ME, "hi"), base)).toBeNull();
    expect(notificationFor(message(ME, "me", { "m.mentions": { user_ids: [ME] } }), { ...base, level: "mentions" })).toBeNull();
  });

  it("stays quiet for the room on screen, but not for another room", () => {
    expect(notificationFor(message(BOB, "hi"), { ...base, visible: true })).toBeNull();
    expect(notificationFor(message(BOB, "hi"), { ...base, visible: true, roomOpen: false })).toBe("message");
    expect(notificationFor(message(BOB, "hi"), { ...base, visible: false, roomOpen: false })).toBe("message");
  });

  it("ignores the initial sync", () => {
    expect(notificationFor(message(BOB, "old"), { ...base, initial: true })).toBeNull();
    expect(notificationFor(message(BOB, "old", { "m.mentions": { user_ids: [ME] } }), { ...base, initial: true })).toBeNull();
  });

  it("says nothing at all for a muted room, mentions included", () => {
    const mute = { ...base, level: "mute" as const };
    expect(notificationFor(message(BOB, "hi"), mute)).toBeNull();
    expect(notificationFor(message(BOB, "hi", { "m.mentions": { user_ids: [ME] } }), mute)).toBeNull();
    expect(notificationFor(message(BOB, "hi"), { ...mute, highlightGrew: true })).toBeNull();
  });

  it("notifies a mentions-only room of mentions alone", () => {
    const mentions = { ...base, level: "mentions" as const };
    expect(notificationFor(message(BOB, "hi"), mentions)).toBeNull();
    expect(notificationFor(message(BOB, "hi", { "m.mentions": { user_ids: ["@carol:hs"] } }), mentions)).toBeNull();
    expect(notificationFor(message(BOB, "hi alice", { "m.mentions": { user_ids: [ME] } }), mentions)).toBe("mention");
    expect(notificationFor(message(BOB, "hi alice"), { ...mentions, highlightGrew: true })).toBe("mention");
  });

  it("marks mentions in a room that notifies of everything", () => {
    expect(notificationFor(message(BOB, "hi", { "m.mentions": { user_ids: [ME] } }), base)).toBe("mention");
  });

  it("skips what is not a new message: edits, reactions, state", () => {
    const edit = message(BOB, "* fixed", { "m.relates_to": { rel_type: "m.replace", event_id: "$1" } });
    expect(notificationFor(edit, base)).toBeNull();
    const reaction: MatrixEvent = { ...message(BOB, ""), type: "m.reaction", content: { "m.relates_to": { rel_type: "m.annotation", event_id: "$1", key: "👍" } } };
    expect(notificationFor(reaction, base)).toBeNull();
    const topic: MatrixEvent = { ...message(BOB, ""), type: "m.room.topic", state_key: "", content: { topic: "t" } };
    expect(notificationFor(topic, base)).toBeNull();
  });
});

describe("levelOf", () => {
  it("reads the stored level and falls back to all messages", () => {
    expect(levelOf({ level: "mute" })).toBe("mute");
    expect(levelOf({ level: "mentions" })).toBe("mentions");
    expect(levelOf({ level: "loud" })).toBe("all");
    expect(levelOf(undefined)).toBe("all");
  });
});

function sync(batch: string, rooms: Record<string, { events?: MatrixEvent[]; counts?: [number, number]; level?: string }>): SyncResponse {
  const join: JsonObject = {};
  for (const [roomId, r] of Object.entries(rooms)) {
    join[roomId] = {
      timeline: { events: r.events ?? [], limited: false, prev_batch: `p${batch}` },
      ...(r.counts ? { unread_notifications: { notification_count: r.counts[0], highlight_count: r.counts[1] } } : {}),
      ...(r.level ? { account_data: { events: [{ type: "io.hearth.notifications", content: { level: r.level } }] } } : {}),
    };
  }
  return { next_batch: batch, rooms: { join } } as unknown as SyncResponse;
}

describe("ClientStore news and unread count", () => {
  it("marks the first sync as initial, later ones as new, and reports highlight growth", () => {
    const store = new ClientStore(ME);
    const heard: TimelineNews[] = [];
    store.onNews((news) => heard.push(news));
    store.applySync(sync("1", { "!a": { events: [message(BOB, "old")], counts: [1, 0] } }));
    store.applySync(sync("2", { "!a": { events: [message(BOB, "new")], counts: [2, 1] } }));
    store.applySync(sync("3", { "!a": { counts: [0, 0] } }));
    expect(heard.map((h) => [h.initial, h.highlightGrew, h.events.map((e) => e.content.body)])).toEqual([
      [true, false, ["old"]],
      [false, true, ["new"]],
    ]);
  });

  it("leaves muted rooms out of the total and counts only highlights in mentions-only rooms", () => {
    const store = new ClientStore(ME);
    store.applySync(sync("1", { "!a": { counts: [3, 0] }, "!b": { counts: [5, 1] }, "!c": { counts: [7, 2] } }));
    expect(store.totalUnread()).toBe(15);
    store.applySync(sync("2", { "!b": { level: "mentions" }, "!c": { level: "mute" } }));
    expect(store.totalUnread()).toBe(4);
  });
});
