// Two matrix-js-sdk clients with the Rust crypto on one Hearth: Alice creates an
// encrypted room, Bob joins, and Bob decrypts Alice's message; Bob's second device, which
// joins later, gets the room key by to-device with Alice's next message.

import { test, after } from "node:test";
import assert from "node:assert/strict";

import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

import { startHearth } from "./hearth.mjs";

// The SDK's own logs, and the Rust crypto's tracing (which writes to console.debug and
// console.info), only when asked for with SDK_LOG=debug.
logger.setLevel(process.env.SDK_LOG ?? "error");
if (!process.env.SDK_LOG) {
    console.debug = () => {};
    console.info = () => {};
}

const clients = [];
let hearth;

after(() => {
    for (const client of clients) client.stopClient();
    hearth?.stop();
});

async function startClient(session) {
    const client = sdk.createClient({ baseUrl: hearth.baseUrl, ...session });
    await client.initRustCrypto({ useIndexedDB: false });
    const ready = new Promise((resolve) => {
        client.on(sdk.ClientEvent.Sync, (state) => {
            if (state === "PREPARED" || state === "SYNCING") resolve();
        });
    });
    await client.startClient({ initialSyncLimit: 20 });
    await ready;
    clients.push(client);
    return client;
}

async function waitFor(what, check, timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await check();
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${hearth.logs()}`);
        await new Promise((r) => setTimeout(r, 100));
    }
}

/** The decrypted bodies of the room's messages as `client` sees them. */
async function bodies(client, roomId) {
    const room = client.getRoom(roomId);
    if (!room) return [];
    const out = [];
    for (const event of room.getLiveTimeline().getEvents()) {
        if (event.isEncrypted() || event.getType() === "m.room.message") {
            await client.decryptEventIfNeeded(event);
            if (event.getType() === "m.room.message" && !event.isDecryptionFailure()) {
                out.push(event.getContent().body);
            }
        }
    }
    return out;
}

test("Bob decrypts Alice's message in an encrypted room, and so does his new device", async () => {
    hearth = await startHearth();
    const alice = await startClient(await hearth.register("alice"));
    const bob = await startClient(await hearth.register("bob"));

    const { room_id: roomId } = await alice.createRoom({
        preset: "public_chat",
        initial_state: [
            { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
        ],
    });
    await bob.joinRoom(roomId);
    await waitFor("Alice to see Bob joined", () =>
        alice.getRoom(roomId)?.getMember(bob.getUserId())?.membership === "join",
    );
    assert.ok(await alice.getCrypto().isEncryptionEnabledInRoom(roomId));

    await alice.sendTextMessage(roomId, "hello bob, secretly");
    const seen = await waitFor("Bob to decrypt Alice's message", async () => {
        const texts = await bodies(bob, roomId);
        return texts.includes("hello bob, secretly") && texts;
    });
    assert.ok(seen.includes("hello bob, secretly"));

    // The message on the server is encrypted.
    const response = await fetch(
        `${hearth.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=20`,
        { headers: { authorization: `Bearer ${bob.getAccessToken()}` } },
    );
    const { chunk } = await response.json();
    assert.ok(chunk.some((e) => e.type === "m.room.encrypted"));
    assert.ok(!chunk.some((e) => e.type === "m.room.message"));

    // Bob's second device: Alice's client learns of it through device_lists and sends
    // it the room key with her next message.
    const bob2 = await startClient(await hearth.login("bob", "BOBTWO"));
    await waitFor("Alice to see Bob's second device", async () => {
        const devices = await alice.getCrypto().getUserDeviceInfo([bob.getUserId()], true);
        return devices.get(bob.getUserId())?.has("BOBTWO");
    });
    await alice.sendTextMessage(roomId, "hello both of you");
    await waitFor("Bob's second device to decrypt Alice's next message", async () =>
        (await bodies(bob2, roomId)).includes("hello both of you"),
    );
});
