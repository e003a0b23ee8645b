// Server-side key backup with matrix-js-sdk (Rust crypto) on one Hearth: Alice's first
// device writes a message in an encrypted room, sets up secret storage with a recovery
// key and a new key backup (the SDK's own bootstrap), and backs up the room key. Her new
// device, which never received that key by to-device, restores the backup with the
// recovery key and decrypts the old message.

import { test, after } from "node:test";
import assert from "node:assert/strict";

import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

import { startHearth } from "./hearth.mjs";

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

/** A client whose secret-storage prompt is answered with `recoveryKey()`'s key. */
async function startClient(session, recoveryKey) {
    const client = sdk.createClient({
        baseUrl: hearth.baseUrl,
        ...session,
        cryptoCallbacks: {
            getSecretStorageKey: async ({ keys }) => {
                const key = recoveryKey();
                if (!key) return null;
                return [Object.keys(keys)[0], key.privateKey];
            },
        },
    });
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

async function api(client, path) {
    const response = await fetch(`${hearth.baseUrl}${path}`, {
        headers: { authorization: `Bearer ${client.getAccessToken()}` },
    });
    return { status: response.status, body: await response.json() };
}

test("a key backup made by Alice's first device restores history on her new device", async () => {
    hearth = await startHearth();
    let recoveryKey = null;
    const alice = await startClient(await hearth.register("alice"), () => recoveryKey);
    const crypto = alice.getCrypto();

    const { room_id: roomId } = await alice.createRoom({
        initial_state: [
            { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
        ],
    });
    await waitFor("Alice's client to know the room is encrypted", () =>
        crypto.isEncryptionEnabledInRoom(roomId),
    );
    await alice.sendTextMessage(roomId, "a secret from before");
    await waitFor("Alice to see her own message", async () =>
        (await bodies(alice, roomId)).includes("a secret from before"),
    );

    // Cross-signing, secret storage behind a recovery key, and a new key backup, as
    // Element sets them up.
    await crypto.bootstrapCrossSigning({
        authUploadDeviceSigningKeys: async (makeRequest) => {
            await makeRequest(null);
        },
    });
    recoveryKey = await crypto.createRecoveryKeyFromPassphrase();
    await crypto.bootstrapSecretStorage({
        createSecretStorageKey: async () => recoveryKey,
        setupNewKeyBackup: true,
    });
    const version = await waitFor("the backup to be active", () => crypto.getActiveSessionBackupVersion());
    const info = await api(alice, "/_matrix/client/v3/room_keys/version");
    assert.equal(info.status, 200, JSON.stringify(info.body));
    assert.equal(info.body.version, version);
    assert.equal(info.body.algorithm, "m.megolm_backup.v1.curve25519-aes-sha2");

    // The room key reaches the server, encrypted.
    const backedUp = await waitFor("the room key to be backed up", async () => {
        const { body } = await api(alice, `/_matrix/client/v3/room_keys/keys?version=${version}`);
        const sessions = body.rooms?.[roomId]?.sessions ?? {};
        return Object.keys(sessions).length > 0 && sessions;
    });
    const stored = Object.values(backedUp)[0];
    assert.ok(stored.session_data.ciphertext, JSON.stringify(stored));
    assert.ok(!JSON.stringify(stored).includes("a secret from before"));

    // A new device: it cannot read the old message until it restores the backup with
    // the recovery key from secret storage.
    const newDevice = await startClient(await hearth.login("alice", "ALICETWO"), () => recoveryKey);
    const newCrypto = newDevice.getCrypto();
    await waitFor("the new device to see the room", () => newDevice.getRoom(roomId));
    assert.deepEqual(await bodies(newDevice, roomId), []);
    await newCrypto.loadSessionBackupPrivateKeyFromSecretStorage();
    const check = await newCrypto.checkKeyBackupAndEnable();
    assert.equal(check?.backupInfo?.version, version);
    const restored = await newCrypto.restoreKeyBackup();
    assert.ok(restored.imported >= 1, JSON.stringify(restored));
    await waitFor("the new device to decrypt the old message", async () =>
        (await bodies(newDevice, roomId)).includes("a secret from before"),
    );
});
