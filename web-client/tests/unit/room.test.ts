import { describe, expect, it } from "vitest";
import type { JsonObject, MatrixEvent } from "../../src/matrix/types";
import { Room } from "../../src/sync/room";

let ts = 1000;
function ev(id: string, sender: string, type: string, content: JsonObject, extra: Partial<MatrixEvent> = {}): MatrixEvent {
  return { event_id: id, sender, type, content, origin_server_ts: ts++, ...extra };
}

const text = (id: string, sender: string, body: string) => ev(id, sender, "m.room.message", { msgtype: "m.text", body });

describe("Room", () => {
  it("takes avatars from member events, and a direct chat's picture from the partner", () => {
    const room = new Room("!r");
    const member = (id: string, user: string, content: JsonObject) => ev(id, user, "m.room.member", { membership: "join", ...content }, { state_key: user });
    room.addEvents([member("$a", "@a", { avatar_url: "mxc://hs/a" }), member("$b", "@b", { avatar_url: "mxc://hs/b" })], "end");
    expect(room.avatarUrl("@b")).toBe("mxc://hs/b");
    expect(room.avatarUrl("@nobody")).toBeUndefined();
    expect(room.avatar(undefined)).toBeUndefined();
    expect(room.avatar("@b")).toBe("mxc://hs/b");
    room.addEvents([ev("$av", "@a", "m.room.avatar", { url: "mxc://hs/room" }, { state_key: "" })], "end");
    expect(room.avatar("@b")).toBe("mxc://hs/room");
    // A new member event without a picture removes it.
    room.addEvents([member("$b2", "@b", {})], "end");
    expect(room.avatarUrl("@b")).toBeUndefined();
  });

  it("aggregates reactions per key and sender, and undoes a redacted one", () => {
    const room = new Room("!r");
    room.addEvents(
      [
        text("$m", "@a", "hi"),
        ev("$r1", "@a", "m.reaction", { "m.relates_to": { rel_type: "m.annotation", event_id: "$m", key: "👍" } }),
        ev("$r2", "@b", "m.reaction", { "m.relates_to": { rel_type: "m.annotation", event_id: "$m", key: "👍" } }),
        ev("$r3", "@b", "m.reaction", { "m.relates_to": { rel_type: "m.annotation", event_id: "$m", key: "🎉" } }),
      ],
      "end",
    );
    expect(room.timeline.map((e) => e.event_id)).toEqual(["$m"]);
    expect([...(room.reactions.get("$m")?.get("👍")?.keys() ?? [])]).toEqual(["@a", "@b"]);
    room.addEvents([ev("$x", "@b", "m.room.redaction", { redacts: "$r2" })], "end");
    expect([...(room.reactions.get("$m")?.get("👍")?.keys() ?? [])]).toEqual(["@a"]);
    room.addEvents([ev("$y", "@b", "m.room.redaction", {}, { redacts: "$r3" })], "end");
    expect(room.reactions.get("$m")?.has("🎉")).toBe(false);
  });

  it("shows the latest edit by the original sender only", () => {
    const room = new Room("!r");
    const edit = (id: string, sender: string, body: string) =>
      ev(id, sender, "m.room.message", {
        msgtype: "m.text",
        body: `* ${body}`,
        "m.new_content": { msgtype: "m.text", body },
        "m.relates_to": { rel_type: "m.replace", event_id: "$m" },
      });
    room.addEvents([text("$m", "@a", "first"), edit("$e1", "@a", "second"), edit("$e2", "@b", "hijack")], "end");
    const original = room.event("$m")!;
    expect(room.displayContent(original)).toEqual({ content: { msgtype: "m.text", body: "second" }, edited: true });
    expect(room.timeline).toHaveLength(1);
    room.addEvents([edit("$e3", "@a", "third")], "end");
    expect(room.displayContent(original).content.body).toBe("third");
  });

  it("takes an edit bundled by the server", () => {
    const room = new Room("!r");
    const bundled = ev("$e", "@a", "m.room.message", {
      body: "* new",
      "m.new_content": { msgtype: "m.text", body: "new" },
      "m.relates_to": { rel_type: "m.replace", event_id: "$m" },
    });
    room.addEvents([{ ...text("$m", "@a", "old"), unsigned: { "m.relations": { "m.replace": bundled } } }], "start");
    expect(room.displayContent(room.event("$m")!).content.body).toBe("new");
  });

  it("blanks a redacted message and forgets its edits", () => {
    const room = new Room("!r");
    room.addEvents([text("$m", "@a", "oops")], "end");
    room.addEvents([ev("$x", "@a", "m.room.redaction", { redacts: "$m" })], "end");
    const message = room.event("$m")!;
    expect(message.content).toEqual({});
    expect(message.unsigned?.redacted_because?.event_id).toBe("$x");
  });

  it("pages older events in before the live ones, once each", () => {
    const room = new Room("!r");
    room.addEvents([text("$3", "@a", "three")], "end");
    room.addEvents([text("$1", "@a", "one"), text("$2", "@a", "two"), text("$3", "@a", "three")], "start");
    expect(room.timeline.map((e) => e.event_id)).toEqual(["$1", "$2", "$3"]);
  });

  it("remembers what a live membership change replaced", () => {
    const room = new Room("!r");
    const member = (id: string, membership: string, sender = "@a") =>
      ev(id, sender, "m.room.member", { membership }, { state_key: "@b" });
    room.addEvents([member("$1", "ban")], "end");
    room.addEvents([member("$2", "leave")], "end");
    expect(room.event("$2")?.unsigned?.prev_content).toEqual({ membership: "ban" });
    expect(room.membershipOf("@b")).toBe("leave");
  });

  it("reads receipts per user, keeping the newest", () => {
    const room = new Room("!r");
    room.applyReceipts({ $1: { "m.read": { "@b": { ts: 5 } } } });
    room.applyReceipts({ $0: { "m.read": { "@b": { ts: 3 } } }, $2: { "m.read": { "@c": { ts: 9 } } } });
    expect(room.receipts.get("@b")).toEqual({ eventId: "$1", ts: 5 });
    expect(room.receipts.get("@c")).toEqual({ eventId: "$2", ts: 9 });
  });
});
