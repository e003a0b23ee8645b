// matrix-js-sdk's sliding sync (MSC4186, its `SlidingSync` class) against Hearth: the room
// list arrives sorted by recency, a new message moves its room into the window, a room
// subscription receives the timeline and the state asked for, and the extensions deliver
// to-device messages and typing.

import { test, after } from "node:test";
import assert from "node:assert/strict";

import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";
import { SlidingSync, SlidingSyncEvent } from "matrix-js-sdk/lib/sliding-sync.js";

import { startHearth } from "./hearth.mjs";

// The SDK's own logs, and the Rust crypto's tracing (which writes to console.debug and
// console.info), only when asked for with SDK_LOG=debug.
logger.setLevel(process.env.SDK_LOG ?? "error");
if (!process.env.SDK_LOG) {
    console.debug = () => {};
    console.info = () => {};
}

let hearth;
let client;

after(() => {
    client?.stopClient();
    hearth?.stop();
});

/** A client-server request as `session`. */
async function api(session, method, path, body) {
    const response = await fetch(`${hearth.baseUrl}/_matrix/client/v3${path}`, {
        method,
        headers: { authorization: `Bearer ${session.accessToken}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(`${method} ${path}: ${JSON.stringify(answer)}`);
    return answer;
}

const enc = encodeURIComponent;
let txn = 0;

async function say(session, roomId, text) {
    txn += 1;
    return api(session, "PUT", `/rooms/${enc(roomId)}/send/m.room.message/t${txn}`, {
        msgtype: "m.text",
        body: text,
    });
}

async function waitFor(what, check, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await check();
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${hearth.logs()}`);
        await new Promise((r) => setTimeout(r, 50));
    }
}

test("matrix-js-sdk's sliding sync: sorted list, bumps, subscriptions, to-device and typing", async () => {
    hearth = await startHearth();
    const versions = await (await fetch(`${hearth.baseUrl}/_matrix/client/versions`)).json();
    assert.equal(versions.unstable_features["org.matrix.simplified_msc3575"], true);

    const alice = await hearth.register("alice");
    const bob = await hearth.register("bob");
    // Four rooms Bob is in, each with a message, the oldest first.
    const rooms = [];
    for (const name of ["zero", "one", "two", "three"]) {
        const { room_id: roomId } = await api(alice, "POST", "/createRoom", { preset: "public_chat", name });
        await api(bob, "POST", `/join/${enc(roomId)}`, {});
        await say(alice, roomId, `hello ${name}`);
        rooms.push(roomId);
    }
    const [zero, one, two, three] = rooms;

    client = sdk.createClient({ baseUrl: hearth.baseUrl, ...bob });
    // With the Rust crypto, the SDK also asks for the e2ee extension and uploads its
    // one-time keys when the extension's counts say there are none.
    await client.initRustCrypto({ useIndexedDB: false });
    const slidingSync = new SlidingSync(
        hearth.baseUrl,
        new Map([
            [
                "top",
                {
                    ranges: [[0, 1]],
                    timeline_limit: 5,
                    required_state: [
                        ["m.room.name", ""],
                        ["m.room.member", "$LAZY"],
                    ],
                },
            ],
        ]),
        { timeline_limit: 10, required_state: [["*", "*"]] },
        client,
        10_000,
    );
    // Every room update as the SDK receives it, in order.
    const updates = [];
    slidingSync.on(SlidingSyncEvent.RoomData, (roomId, data) => updates.push({ roomId, data }));
    const typing = [];
    const toDevice = [];
    client.on(sdk.ClientEvent.Event, (event) => {
        if (event.getType() === "m.typing") typing.push({ roomId: event.getRoomId(), ...event.getContent() });
    });
    client.on(sdk.ClientEvent.ToDeviceEvent, (event) => toDevice.push(event));
    await client.startClient({ slidingSync });

    // The window of two holds the two newest rooms; the count is all four.
    await waitFor("the first list", () => updates.length >= 2);
    const first = updates.slice(0, 2);
    const byRecency = [...first].sort((a, b) => b.data.bump_stamp - a.data.bump_stamp).map((u) => u.roomId);
    assert.deepEqual(byRecency, [three, two]);
    assert.ok(first.every((u) => u.data.initial));
    assert.equal(slidingSync.getListData("top").joinedCount, 4);
    await waitFor("rooms in the client", () => client.getRoom(three)?.name === "three");

    // A message in an old room moves it into the window, with the newest bump stamp.
    await say(alice, one, "back on top");
    const moved = await waitFor("the bumped room", () => updates.find((u) => u.roomId === one));
    assert.ok(moved.data.initial);
    assert.ok(moved.data.bump_stamp > first.find((u) => u.roomId === three).data.bump_stamp);
    assert.equal(moved.data.timeline.at(-1).content.body, "back on top");
    await waitFor("the bumped room's timeline", () =>
        client
            .getRoom(one)
            ?.getLiveTimeline()
            .getEvents()
            .some((e) => e.getContent().body === "back on top"),
    );

    // A subscription to a room outside the window sends its timeline and all its state.
    slidingSync.modifyRoomSubscriptions(new Set([zero]));
    const subscribed = await waitFor("the subscribed room", () => updates.find((u) => u.roomId === zero));
    assert.ok(subscribed.data.initial);
    assert.deepEqual(
        subscribed.data.timeline.filter((e) => e.type === "m.room.message").map((e) => e.content.body),
        ["hello zero"],
    );
    const stateTypes = new Set(subscribed.data.required_state.map((e) => e.type));
    for (const type of ["m.room.create", "m.room.name", "m.room.member", "m.room.power_levels"]) {
        assert.ok(stateTypes.has(type), `${type} in ${[...stateTypes]}`);
    }
    await waitFor("the subscribed room in the client", () => client.getRoom(zero)?.name === "zero");

    // Extensions: a to-device message for Bob's device, and Alice typing in a listed room.
    await api(alice, "PUT", `/sendToDevice/m.hearth.test/td1`, {
        messages: { [bob.userId]: { [bob.deviceId]: { hello: "bob" } } },
    });
    const message = await waitFor("the to-device message", () => toDevice.find((e) => e.getType() === "m.hearth.test"));
    assert.equal(message.getSender(), alice.userId);
    assert.deepEqual(message.getContent(), { hello: "bob" });
    await api(alice, "PUT", `/rooms/${enc(one)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 30_000 });
    await waitFor("Alice typing", () =>
        typing.some((t) => t.roomId === one && t.user_ids.includes(alice.userId)),
    );

    // The e2ee extension's key counts made the crypto upload Bob's device keys.
    const keys = await waitFor("Bob's device keys", async () => {
        const answer = await api(alice, "POST", "/keys/query", { device_keys: { [bob.userId]: [] } });
        return answer.device_keys[bob.userId]?.[bob.deviceId];
    });
    assert.equal(keys.device_id, bob.deviceId);
});
