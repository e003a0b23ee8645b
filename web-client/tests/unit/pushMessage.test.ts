import { describe, expect, it } from "vitest";
import { ackOf, describePush, roomUrl } from "../../src/notify/pushMessage";

// Messages as Hearth's Web Push pushers send them (see spec/push.md).
const plain = {
  event_id: "$e",
  room_id: "!r:example.org",
  counts: { unread: 1 },
  prio: "low",
  type: "m.room.message",
  sender: "@alice:example.org",
  sender_display_name: "Alice",
  room_name: "#general",
  content: { msgtype: "m.text", body: "hello" },
};

describe("describePush", () => {
  it("names the sender and the room, with the message", () => {
    expect(describePush(plain)).toEqual({ title: "Alice in #general", body: "hello", tag: "!r:example.org", roomId: "!r:example.org" });
  });

  it("uses the sender alone where the room has no name, and their ID without a display name", () => {
    const { room_name: _, sender_display_name: __, ...bare } = plain;
    expect(describePush(bare)?.title).toBe("@alice:example.org");
  });

  it("says nothing readable for encrypted rooms or ID-only messages", () => {
    const encrypted = { event_id: "$e", room_id: "!r:x", counts: { unread: 2 }, type: "m.room.encrypted" };
    expect(describePush(encrypted)).toEqual({ title: "Hearth", body: "You have a new message", tag: "!r:x", roomId: "!r:x" });
    expect(describePush({ event_id: "$e", room_id: "!r:x" })?.body).toBe("You have a new message");
  });

  it("writes emotes as actions, shortens long bodies and tells invites", () => {
    expect(describePush({ ...plain, content: { msgtype: "m.emote", body: "waves" } })?.body).toBe("* Alice waves");
    expect(describePush({ ...plain, content: { msgtype: "m.text", body: "x".repeat(500) } })?.body).toHaveLength(200);
    const invite = { ...plain, type: "m.room.member", user_is_target: true, content: { membership: "invite" } };
    expect(describePush(invite)?.body).toBe("Alice invited you to #general");
  });

  it("ignores pushes that are not about an event", () => {
    expect(describePush(null)).toBeNull();
    expect(describePush({ counts: { unread: 0 } })).toBeNull();
    expect(describePush({ app_id: "a", ack_token: "t" })).toBeNull();
  });
});

describe("ackOf", () => {
  it("recognises the validation push of a new pusher, and only it", () => {
    expect(ackOf({ app_id: "org.hearth.web", ack_token: "6fc76b70" })).toEqual({ app_id: "org.hearth.web", ack_token: "6fc76b70" });
    expect(ackOf(plain)).toBeNull();
    expect(ackOf({ app_id: "org.hearth.web" })).toBeNull();
    expect(ackOf("text")).toBeNull();
  });
});

describe("roomUrl", () => {
  it("is the client's route of the room under the worker's scope", () => {
    expect(roomUrl("https://hearth.example/", "!r:example.org")).toBe("https://hearth.example/#/room/!r%3Aexample.org");
  });
});
