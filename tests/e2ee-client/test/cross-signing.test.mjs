// Cross-signing with two matrix-js-sdk clients (Rust crypto) on one Hearth: each
// bootstraps cross-signing (the first upload needs no password), Alice's device shows as
// signed by her to Bob, and Bob verifies Alice by emoji (SAS over to-device messages),
// after which Bob's client trusts Alice's identity and the server holds his signature.

import { test, after } from "node:test";
import assert from "node:assert/strict";

import * as sdk from "matrix-js-sdk";
import { CryptoEvent, VerificationPhase, VerifierEvent } from "matrix-js-sdk/lib/crypto-api/index.js";
import { logger } from "matrix-js-sdk/lib/logger.js";

import { startHearth } from "./hearth.mjs";

logger.setLevel(process.env.SDK_LOG ?? "error");
if (!process.env.SDK_LOG) {
    console.debug = () => {};
    console.info = () => {};
}

const PASSWORD = "correct horse battery";
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

/** Bootstraps cross-signing, counting the password prompts. */
async function bootstrap(client, username) {
    let prompts = 0;
    await client.getCrypto().bootstrapCrossSigning({
        authUploadDeviceSigningKeys: async (makeRequest) => {
            try {
                await makeRequest(null);
            } catch (e) {
                prompts += 1;
                await makeRequest({
                    type: "m.login.password",
                    identifier: { type: "m.id.user", user: username },
                    password: PASSWORD,
                    session: e.data?.session,
                });
            }
        },
    });
    return prompts;
}

test("cross-signing is bootstrapped and Bob verifies Alice by emoji", async () => {
    hearth = await startHearth();
    const alice = await startClient(await hearth.register("alice"));
    const bob = await startClient(await hearth.register("bob"));
    const aliceId = alice.getUserId();
    const aliceDevice = alice.getDeviceId();

    assert.equal(await bootstrap(alice, "alice"), 0, "the first upload needs no password");
    assert.equal(await bootstrap(bob, "bob"), 0);
    assert.ok(await alice.getCrypto().isCrossSigningReady());
    assert.ok(await bob.getCrypto().isCrossSigningReady());

    // Bob shares an encrypted room with Alice, so his client tracks her devices; he sees
    // her device signed by her self-signing key, but does not trust her yet.
    const { room_id: roomId } = await alice.createRoom({
        preset: "public_chat",
        initial_state: [
            { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
        ],
    });
    await bob.joinRoom(roomId);
    const status = await waitFor("Alice's device signed by her", async () => {
        const s = await bob.getCrypto().getDeviceVerificationStatus(aliceId, aliceDevice);
        return s?.signedByOwner && s;
    });
    assert.equal(status.crossSigningVerified, false);
    assert.equal((await bob.getCrypto().getUserVerificationStatus(aliceId)).isCrossSigningVerified(), false);

    // Emoji verification over to-device messages.
    const incoming = new Promise((resolve) => alice.on(CryptoEvent.VerificationRequestReceived, resolve));
    const bobRequest = await bob.getCrypto().requestDeviceVerification(aliceId, aliceDevice);
    const aliceRequest = await incoming;
    await aliceRequest.accept();
    await waitFor("Bob's request to be ready", () => bobRequest.phase === VerificationPhase.Ready);
    const bobVerifier = await bobRequest.startVerification("m.sas.v1");
    const aliceVerifier = await waitFor("Alice's verifier", () => aliceRequest.verifier);
    const emoji = {};
    for (const [name, verifier] of [["bob", bobVerifier], ["alice", aliceVerifier]]) {
        verifier.on(VerifierEvent.ShowSas, (sas) => {
            emoji[name] = sas.sas.emoji.map(([symbol]) => symbol).join("");
            sas.confirm();
        });
    }
    await Promise.all([bobVerifier.verify(), aliceVerifier.verify()]);
    assert.equal(emoji.alice, emoji.bob);
    assert.equal(emoji.alice.length > 0, true);

    await waitFor("Bob to trust Alice's identity", async () =>
        (await bob.getCrypto().getUserVerificationStatus(aliceId)).isCrossSigningVerified(),
    );
    // The server holds Bob's signature on Alice's master key.
    const response = await fetch(`${hearth.baseUrl}/_matrix/client/v3/keys/query`, {
        method: "POST",
        headers: { authorization: `Bearer ${bob.getAccessToken()}`, "content-type": "application/json" },
        body: JSON.stringify({ device_keys: { [aliceId]: [] } }),
    });
    const body = await response.json();
    const signers = Object.keys(body.master_keys[aliceId].signatures ?? {});
    assert.ok(signers.includes(bob.getUserId()), JSON.stringify(body.master_keys));
});
