import { describe, expect, it } from "vitest";
import { markUndecryptable, undecryptableReason, withCleartext } from "../../src/crypto/events";
import { masterKeyOf, publishedMasterKey } from "../../src/crypto/crossSigning";
import { isRequestFor, isVerificationEvent, verificationEventJson } from "../../src/crypto/inRoomVerification";
import { RequestKind, httpFor } from "../../src/crypto/requests";
import { decodeRecoveryKey, encodeRecoveryKey, fromBase64, toBase64 } from "../../src/crypto/recoveryKey";
import { cryptoParts } from "../../src/crypto/syncParts";
import type { MatrixEvent, SyncResponse } from "../../src/matrix/types";
import { lastMessagePreview } from "../../src/rooms/summary";
import { Room } from "../../src/sync/room";

const envelope = (extra: Partial<MatrixEvent> = {}): MatrixEvent => ({
  event_id: "$e",
  type: "m.room.encrypted",
  sender: "@alice:hs",
  origin_server_ts: 5,
  content: { algorithm: "m.megolm.v1.aes-sha2", ciphertext: "AwgA", session_id: "S1", sender_key: "K", device_id: "D" },
  ...extra,
});

describe("the encryption machine's requests as HTTP calls", () => {
  it("maps each kind to its endpoint with the machine's body", () => {
    expect(httpFor({ type: RequestKind.KeysUpload, body: '{"device_keys":{}}' })).toEqual({
      method: "POST",
      path: "/_matrix/client/v3/keys/upload",
      body: { device_keys: {} },
    });
    expect(httpFor({ type: RequestKind.KeysQuery, body: "{}" })?.path).toBe("/_matrix/client/v3/keys/query");
    expect(httpFor({ type: RequestKind.KeysClaim, body: "{}" })?.path).toBe("/_matrix/client/v3/keys/claim");
    expect(httpFor({ type: RequestKind.SignatureUpload, body: "{}" })?.path).toBe("/_matrix/client/v3/keys/signatures/upload");
    expect(httpFor({ type: RequestKind.ToDevice, body: '{"messages":{}}', event_type: "m.room.encrypted", txn_id: "t/1" })).toEqual({
      method: "PUT",
      path: "/_matrix/client/v3/sendToDevice/m.room.encrypted/t%2F1",
      body: { messages: {} },
    });
    expect(
      httpFor({ type: RequestKind.RoomMessage, body: "{}", room_id: "!r:hs", event_type: "m.key.verification.ready", txn_id: "t" })?.path,
    ).toBe("/_matrix/client/v3/rooms/!r%3Ahs/send/m.key.verification.ready/t");
    expect(httpFor({ type: RequestKind.KeysBackup, body: "{}", version: "1" })?.path).toBe("/_matrix/client/v3/room_keys/keys?version=1");
  });

  it("sends nothing for a request missing what its path needs, or of an unknown kind", () => {
    expect(httpFor({ type: RequestKind.ToDevice, body: "{}" })).toBeNull();
    expect(httpFor({ type: RequestKind.KeysBackup, body: "{}" })).toBeNull();
    expect(httpFor({ type: 99, body: "{}" })).toBeNull();
  });
});

describe("what sync gives the machine", () => {
  it("reads to-device events, device lists, key counts and fallback key types", () => {
    const sync = {
      next_batch: "s1",
      to_device: { events: [{ type: "m.room.encrypted", sender: "@b:hs", content: {} }, "junk"] },
      device_lists: { changed: ["@b:hs", 7], left: ["@c:hs"] },
      device_one_time_keys_count: { signed_curve25519: 12, bad: -1, worse: "3" },
      device_unused_fallback_key_types: ["signed_curve25519"],
    } as unknown as SyncResponse;
    const parts = cryptoParts(sync);
    expect(parts.toDevice).toEqual([{ type: "m.room.encrypted", sender: "@b:hs", content: {} }]);
    expect(parts.changed).toEqual(["@b:hs"]);
    expect(parts.left).toEqual(["@c:hs"]);
    expect([...parts.oneTimeKeyCounts]).toEqual([["signed_curve25519", 12]]);
    expect([...(parts.unusedFallbackKeys ?? [])]).toEqual(["signed_curve25519"]);
  });

  it("leaves out what is missing, and takes the unstable fallback key name", () => {
    const empty = cryptoParts({ next_batch: "s" });
    expect(empty).toEqual({ toDevice: [], changed: [], left: [], oneTimeKeyCounts: new Map(), unusedFallbackKeys: null });
    const unstable = cryptoParts({ next_batch: "s", "org.matrix.msc2732.device_unused_fallback_key_types": [] } as unknown as SyncResponse);
    expect(unstable.unusedFallbackKeys).toEqual(new Set());
  });
});

describe("decrypted events", () => {
  it("take the decrypted type and content, the envelope's IDs, and the relation left in the clear", () => {
    const relation = { rel_type: "m.replace", event_id: "$orig" };
    const event = envelope({ content: { ...envelope().content, "m.relates_to": relation }, unsigned: { transaction_id: "t1" } });
    const clear = withCleartext(
      event,
      JSON.stringify({
        type: "m.room.message",
        sender: "@mallory:hs",
        room_id: "!r",
        content: { msgtype: "m.text", body: "* hi", "m.new_content": { msgtype: "m.text", body: "hi" }, "m.relates_to": { rel_type: "m.thread", event_id: "$x" } },
      }),
    );
    expect(clear).toEqual({
      event_id: "$e",
      type: "m.room.message",
      sender: "@alice:hs",
      origin_server_ts: 5,
      content: { msgtype: "m.text", body: "* hi", "m.new_content": { msgtype: "m.text", body: "hi" }, "m.relates_to": relation },
      unsigned: { transaction_id: "t1" },
      e2ee: { state: "decrypted" },
    });
  });

  it("keep a relation only the ciphertext has, and refuse what is not an event", () => {
    const inside = { "m.in_reply_to": { event_id: "$y" } };
    const clear = withCleartext(envelope(), JSON.stringify({ type: "m.room.message", content: { body: "x", "m.relates_to": inside } }));
    expect(clear?.content).toEqual({ body: "x", "m.relates_to": inside });
    expect(withCleartext(envelope(), "not json")).toBeNull();
    expect(withCleartext(envelope(), JSON.stringify({ type: "m.room.message" }))).toBeNull();
    expect(withCleartext(envelope(), JSON.stringify({ type: 3, content: {} }))).toBeNull();
  });

  it("that cannot be decrypted say why and remember their session", () => {
    const event = envelope();
    markUndecryptable(event, undecryptableReason(0, undefined));
    expect(event.e2ee).toEqual({ state: "failed", reason: "Waiting for the key for this message from the sender's device.", sessionId: "S1" });
    expect(undecryptableReason(1, undefined)).toMatch(/before this device joined/);
    expect(undecryptableReason(0, "m.unverified")).toMatch(/unverified/);
    expect(undecryptableReason(6, undefined)).toBe("This message could not be decrypted.");
  });
});

describe("a room with encrypted events", () => {
  it("knows it is encrypted from its state", () => {
    const room = new Room("!r");
    expect(room.isEncrypted()).toBe(false);
    room.setState({ type: "m.room.encryption", state_key: "", sender: "@a", content: { algorithm: "m.megolm.v1.aes-sha2" } });
    expect(room.isEncrypted()).toBe(true);
  });

  it("shows an undecryptable edit as such, and applies it once decrypted", () => {
    const room = new Room("!r");
    const original: MatrixEvent = { event_id: "$orig", type: "m.room.message", sender: "@alice:hs", origin_server_ts: 1, content: { msgtype: "m.text", body: "helo" } };
    const relation = { rel_type: "m.replace", event_id: "$orig" };
    const edit = envelope({ event_id: "$edit", content: { ...envelope().content, "m.relates_to": relation } });
    markUndecryptable(edit, "no key");
    room.addEvents([original, edit], "end");
    expect(room.timeline.map((e) => e.event_id)).toEqual(["$orig", "$edit"]);
    expect(room.displayContent(original).edited).toBe(false);

    const clear = withCleartext(edit, JSON.stringify({ type: "m.room.message", content: { msgtype: "m.text", body: "* hello", "m.new_content": { msgtype: "m.text", body: "hello" } } }));
    room.replaceDecrypted(clear as MatrixEvent);
    expect(room.timeline.map((e) => e.event_id)).toEqual(["$orig"]);
    expect(room.displayContent(original)).toEqual({ content: { msgtype: "m.text", body: "hello" }, edited: true });
  });

  it("puts a decrypted message where its undecryptable copy was", () => {
    const room = new Room("!r");
    const first = envelope({ event_id: "$1" });
    const second: MatrixEvent = { event_id: "$2", type: "m.room.message", sender: "@b:hs", origin_server_ts: 9, content: { body: "after" } };
    room.addEvents([first, second], "end");
    const clear = withCleartext(first, JSON.stringify({ type: "m.room.message", content: { msgtype: "m.text", body: "secret" } }));
    room.replaceDecrypted(clear as MatrixEvent);
    expect(room.timeline.map((e) => [e.event_id, e.type])).toEqual([
      ["$1", "m.room.message"],
      ["$2", "m.room.message"],
    ]);
    expect(room.timeline[0]?.content.body).toBe("secret");
    // An event no longer loaded is left alone.
    room.replaceDecrypted({ ...second, event_id: "$gone" });
    expect(room.timeline).toHaveLength(2);
  });
});

describe("recovery keys", () => {
  const key = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) % 256);

  it("are written in groups of four in base58, starting as Element's do, and read back", () => {
    const text = encodeRecoveryKey(key);
    expect(text).toMatch(/^Es[1-9A-HJ-NP-Za-km-z]{2}( [1-9A-HJ-NP-Za-km-z]{1,4})+$/);
    expect(decodeRecoveryKey(text)).toEqual(key);
    // Spaces and line breaks as people copy them do not matter.
    expect(decodeRecoveryKey(`  ${text.replace(/ /g, "\n")} `)).toEqual(key);
    expect(decodeRecoveryKey(encodeRecoveryKey(new Uint8Array(32)))).toEqual(new Uint8Array(32));
  });

  it("refuse typos and other strings", () => {
    const text = encodeRecoveryKey(key);
    const last = text.at(-1) === "2" ? "3" : "2";
    expect(() => decodeRecoveryKey(text.slice(0, -1) + last)).toThrow(/typo|not a recovery key/);
    expect(() => decodeRecoveryKey("hello")).toThrow(/not in a recovery key|not a recovery key/);
    expect(() => decodeRecoveryKey("EsTx")).toThrow("That is not a recovery key.");
    expect(() => encodeRecoveryKey(new Uint8Array(31))).toThrow();
  });

  it("round-trip through unpadded base64, as the machine writes keys", () => {
    expect(toBase64(key)).not.toContain("=");
    expect(fromBase64(toBase64(key))).toEqual(key);
  });
});

describe("in-room verification events", () => {
  const request = (extra: Partial<MatrixEvent> = {}): MatrixEvent => ({
    event_id: "$req",
    type: "m.room.message",
    sender: "@alice:hs",
    origin_server_ts: 7,
    content: { msgtype: "m.key.verification.request", to: "@bob:hs", from_device: "A", methods: ["m.sas.v1"], body: "fallback" },
    ...extra,
  });

  it("are the request message and the m.key.verification.* events, not state or redacted ones", () => {
    expect(isVerificationEvent(request())).toBe(true);
    expect(isVerificationEvent(request({ type: "m.key.verification.start", content: {} }))).toBe(true);
    expect(isVerificationEvent(request({ content: { msgtype: "m.text", body: "hi" } }))).toBe(false);
    expect(isVerificationEvent(request({ type: "m.key.verification.start", state_key: "" }))).toBe(false);
    expect(isVerificationEvent(request({ unsigned: { redacted_because: request({ type: "m.room.redaction", content: {} }) } }))).toBe(false);
  });

  it("answer a request only when it is addressed to us by someone else", () => {
    expect(isRequestFor(request(), "@bob:hs")).toBe(true);
    expect(isRequestFor(request(), "@carol:hs")).toBe(false);
    expect(isRequestFor(request({ sender: "@bob:hs" }), "@bob:hs")).toBe(false);
    expect(isRequestFor(request({ type: "m.key.verification.ready" }), "@bob:hs")).toBe(false);
  });

  it("show in the room list as a request, not as their fallback body", () => {
    const room = new Room("!r:hs");
    room.addEvents([request()], "end");
    expect(lastMessagePreview(room, "@bob:hs")).toBe("alice: Asked to verify");
  });

  it("hand the machine the event with its room and no local fields", () => {
    const json = JSON.parse(verificationEventJson("!r:hs", { ...request(), e2ee: { state: "decrypted" } })) as Record<string, unknown>;
    expect(json).toEqual({
      event_id: "$req",
      type: "m.room.message",
      sender: "@alice:hs",
      origin_server_ts: 7,
      content: request().content,
      room_id: "!r:hs",
    });
  });
});

describe("published cross-signing keys", () => {
  const master = { user_id: "@a:hs", usage: ["master"], keys: { "ed25519:MK": "MK" } };

  it("read the master key from a key object", () => {
    expect(masterKeyOf(master)).toBe("MK");
    expect(masterKeyOf({ keys: {} })).toBeUndefined();
    expect(masterKeyOf({ keys: { "ed25519:X": 5 } })).toBeUndefined();
    expect(masterKeyOf("MK")).toBeUndefined();
  });

  it("find the user's master key in a /keys/query answer, and nothing when there is none", () => {
    expect(publishedMasterKey({ device_keys: {}, master_keys: { "@a:hs": master } }, "@a:hs")).toBe("MK");
    expect(publishedMasterKey({ device_keys: {}, master_keys: { "@b:hs": master } }, "@a:hs")).toBeUndefined();
    expect(publishedMasterKey({ device_keys: {} }, "@a:hs")).toBeUndefined();
    expect(publishedMasterKey(null, "@a:hs")).toBeUndefined();
  });
});
