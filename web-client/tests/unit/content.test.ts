import { describe, expect, it } from "vitest";
import { buildContent, mentionsIn } from "../../src/composer/content";
import type { MatrixEvent } from "../../src/matrix/types";
import { Room } from "../../src/sync/room";

function member(userId: string, displayname: string): MatrixEvent {
  return {
    event_id: `$${userId}`,
    type: "m.room.member",
    state_key: userId,
    sender: userId,
    origin_server_ts: 1,
    content: { membership: "join", displayname },
  };
}

const original: MatrixEvent = {
  event_id: "$orig",
  type: "m.room.message",
  sender: "@bob:hs",
  origin_server_ts: 2,
  content: { msgtype: "m.text", body: "hi" },
};

describe("buildContent", () => {
  it("sends an edit with the new content and a fallback body", () => {
    const content = buildContent("*better*", { kind: "edit", event: original });
    expect(content).toEqual({
      msgtype: "m.text",
      body: "* *better*",
      format: "org.matrix.custom.html",
      formatted_body: "* <em>better</em>",
      "m.mentions": { user_ids: [] },
      "m.new_content": {
        msgtype: "m.text",
        body: "*better*",
        format: "org.matrix.custom.html",
        formatted_body: "<em>better</em>",
        "m.mentions": { user_ids: [] },
      },
      "m.relates_to": { rel_type: "m.replace", event_id: "$orig" },
    });
  });

  it("sends a reply without a fallback quote", () => {
    expect(buildContent("yes", { kind: "reply", event: original }, ["@bob:hs"])).toEqual({
      msgtype: "m.text",
      body: "yes",
      "m.mentions": { user_ids: ["@bob:hs"] },
      "m.relates_to": { "m.in_reply_to": { event_id: "$orig" } },
    });
  });

  it("turns /me into an emote and shortcodes into emoji", () => {
    expect(buildContent("/me waves :wave:", null)).toEqual({ msgtype: "m.emote", body: "waves 👋", "m.mentions": { user_ids: [] } });
  });
});

describe("mentionsIn", () => {
  const room = new Room("!r:hs");
  room.setState(member("@alice:hs", "Alice"));
  room.setState(member("@bob:hs", "Bob B."));
  room.setState(member("@me:hs", "Me"));

  it("finds members by ID, @name and name: at the start, never oneself", () => {
    expect(mentionsIn("Alice: look", room, "@me:hs")).toEqual(["@alice:hs"]);
    expect(mentionsIn("ask @Bob B. please", room, "@me:hs")).toEqual(["@bob:hs"]);
    expect(mentionsIn("ping @alice:hs and @me:hs", room, "@me:hs")).toEqual(["@alice:hs"]);
    expect(mentionsIn("alicex said nothing about Bob", room, "@me:hs")).toEqual([]);
    expect(mentionsIn("thanks", room, "@me:hs", "@bob:hs")).toEqual(["@bob:hs"]);
  });
});
