import { describe, expect, it } from "vitest";
import type { JsonObject, MatrixEvent, SyncResponse } from "../../src/matrix/types";
import type { NotifyContext } from "../../src/notify/decide";
import { notificationFor } from "../../src/notify/decide";
import type { NotificationLevel } from "../../src/notify/level";
import { LEVELS, levelFromRules, rulesFor } from "../../src/notify/level";
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

/** `m.push_rules` content holding the given rules, as the server sends it (predefined rules left out). */
function pushRules(rules: Array<[string, NotificationLevel]>, extra: { override?: JsonObject[]; room?: JsonObject[] } = {}): JsonObject {
  const override: JsonObject[] = [...(extra.override ?? [])];
  const room: JsonObject[] = [...(extra.room ?? [])];
  for (const [roomId, level] of rules) {
    const wanted = rulesFor(roomId, level);
    if (wanted.override) override.push({ rule_id: roomId, default: false, enabled: true, ...wanted.override });
    if (wanted.room) room.push({ rule_id: roomId, default: false, enabled: true, ...wanted.room });
  }
  return { global: { override, room, content: [], sender: [], underride: [] } };
}

describe("notification levels as push rules", () => {
  it("maps each level to Element's rules", () => {
    expect(rulesFor("!r:hs", "mute")).toEqual({
      override: { conditions: [{ kind: "event_match", key: "room_id", pattern: "!r:hs" }], actions: [] },
    });
    expect(rulesFor("!r:hs", "mentions")).toEqual({ room: { actions: [] } });
    expect(rulesFor("!r:hs", "all")).toEqual({});
  });

  it("reads back each level it writes, per room", () => {
    for (const [level] of LEVELS) {
      const content = pushRules([["!r:hs", level]]);
      expect(levelFromRules(content, "!r:hs")).toBe(level);
      expect(levelFromRules(content, "!other:hs")).toBe("all");
    }
  });

  it("lets mute outrank mentions only, as the override outranks the room rule", () => {
    expect(levelFromRules(pushRules([["!r:hs", "mute"], ["!r:hs", "mentions"]]), "!r:hs")).toBe("mute");
  });

  it("reads older clients' dont_notify rules too", () => {
    const content = pushRules([], {
      override: [{ rule_id: "!m:hs", enabled: true, conditions: [{ kind: "event_match", key: "room_id", pattern: "!m:hs" }], actions: ["dont_notify"] }],
      room: [{ rule_id: "!q:hs", enabled: true, actions: ["dont_notify"] }],
    });
    expect(levelFromRules(content, "!m:hs")).toBe("mute");
    expect(levelFromRules(content, "!q:hs")).toBe("mentions");
  });

  it("counts disabled, noisy or unrecognised rules, and missing data, as all messages", () => {
    const mute = rulesFor("!r:hs", "mute").override ?? {};
    const content = pushRules([], {
      override: [
        { rule_id: "!off:hs", enabled: false, ...mute, conditions: [{ kind: "event_match", key: "room_id", pattern: "!off:hs" }] },
        { rule_id: "!odd:hs", enabled: true, actions: [], conditions: [{ kind: "event_match", key: "content.body", pattern: "x" }] },
      ],
      room: [{ rule_id: "!loud:hs", enabled: true, actions: ["notify", { set_tweak: "sound", value: "default" }] }],
    });
    for (const roomId of ["!off:hs", "!odd:hs", "!loud:hs"]) expect(levelFromRules(content, roomId)).toBe("all");
    expect(levelFromRules(undefined, "!r:hs")).toBe("all");
    expect(levelFromRules({ global: "nonsense" }, "!r:hs")).toBe("all");
  });
});

function sync(
  batch: string,
  rooms: Record<string, { events?: MatrixEvent[]; counts?: [number, number] }>,
  rules?: JsonObject,
): SyncResponse {
  const join: JsonObject = {};
  for (const [roomId, r] of Object.entries(rooms)) {
    join[roomId] = {
      timeline: { events: r.events ?? [], limited: false, prev_batch: `p${batch}` },
      ...(r.counts ? { unread_notifications: { notification_count: r.counts[0], highlight_count: r.counts[1] } } : {}),
    };
  }
  const accountData = rules ? { account_data: { events: [{ type: "m.push_rules", content: rules }] } } : {};
  return { next_batch: batch, rooms: { join }, ...accountData } as unknown as SyncResponse;
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
    store.applySync(sync("2", {}, pushRules([["!b", "mentions"], ["!c", "mute"]])));
    expect(store.totalUnread()).toBe(4);
    // Another device sets them back: sync's new rules replace the old.
    store.applySync(sync("3", {}, pushRules([])));
    expect(store.totalUnread()).toBe(15);
  });
});
