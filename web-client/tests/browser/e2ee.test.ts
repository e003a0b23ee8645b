// End-to-end encryption in the real client: two people in chromium, and a third person's
// encrypting client in Node (the same matrix-sdk-crypto, driven step by step), against a
// real hearth. What the server stores must be ciphertext; what people see, the plain text.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Browser, Locator, Page } from "playwright-core";
import { CryptoPeer } from "./e2ee-peer";
import { Hearth, PASSWORD, launchBrowser, newUserPage, problems, screenshot, setCurrentTest } from "./harness";

let hearth: Hearth;
let browser: Browser;
let alice: Page;
let bob: Page;
let carol: CryptoPeer;
let directRoom = "";
let groupRoom = "";

const WAIT = { timeout: 30_000 };

async function signUp(page: Page, name: string): Promise<void> {
  await page.goto("/");
  await page.getByRole("button", { name: "Create an account" }).click();
  await page.getByLabel("Username").fill(name);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByLabel("Confirm password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  // Keys uploaded: from now on others can encrypt for this device.
  await page.locator('.me[data-crypto="ready"]').waitFor(WAIT);
}

async function signIn(page: Page, name: string): Promise<void> {
  await page.goto("/");
  await page.getByLabel("Username").fill(name);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator('.me[data-crypto="ready"]').waitFor(WAIT);
}

function timeline(page: Page): Locator {
  return page.getByRole("log", { name: "Messages" });
}

function message(page: Page, text: string): Locator {
  return timeline(page).locator("article.event").filter({ hasText: text }).last();
}

async function send(page: Page, text: string): Promise<void> {
  const box = page.locator(".composer textarea");
  await box.fill(text);
  await box.press("Enter");
}

/** The seven emoji a verification shows on one page, symbol and name each. */
async function emojiOn(page: Page): Promise<string[]> {
  const list = page.getByRole("list", { name: "Emoji to compare" });
  await list.waitFor(WAIT);
  return list.locator("li").allTextContents();
}

async function openAccount(page: Page, name: string): Promise<void> {
  await page.getByRole("button", { name: `Account settings for ${hearth.userId(name)}` }).click();
}

function roomIdOf(page: Page): string {
  return decodeURIComponent(new URL(page.url()).hash.replace("#/room/", ""));
}

/** The room's events as the server keeps them, newest first, read with a fresh login. */
async function storedEvents(roomId: string, who: string): Promise<Record<string, unknown>[]> {
  const token = await hearth.login(who);
  const page = await hearth.api<{ chunk: Record<string, unknown>[] }>(
    "GET",
    `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=100`,
    token,
  );
  return page.chunk;
}

beforeAll(async () => {
  hearth = await Hearth.start();
  browser = await launchBrowser();
  ({ page: alice } = await newUserPage(browser, hearth));
  // Bob long-polls, so both ways of syncing feed the encryption machine.
  ({ page: bob } = await newUserPage(browser, hearth, { poll: true }));
});

beforeEach((context) => setCurrentTest(context.task.name));

afterEach(async (context) => {
  if (context.task.result?.state !== "fail") return;
  const name = context.task.name.replace(/\W+/g, "-");
  await screenshot(alice, `failed-e2ee-${name}-alice`).catch(() => undefined);
  await screenshot(bob, `failed-e2ee-${name}-bob`).catch(() => undefined);
});

afterAll(async () => {
  carol?.close();
  await browser?.close();
  await hearth?.stop();
});

describe("end-to-end encryption", () => {
  it("two people exchange encrypted messages in a new direct chat; the server holds only ciphertext", async () => {
    await signUp(alice, "alice");
    await signUp(bob, "bob");

    await alice.getByRole("button", { name: "Direct chat" }).click();
    await alice.getByLabel("User ID or name").fill("bob");
    await alice.getByRole("button", { name: "Start chat" }).click();
    await alice.locator(".room-header h2").filter({ hasText: "bob" }).waitFor(WAIT);
    await alice.locator(".room-header .room-encrypted").waitFor(WAIT);
    directRoom = roomIdOf(alice);
    await timeline(alice).getByText("turned on end-to-end encryption").waitFor(WAIT);
    // Sent while Bob is only invited: he gets the key too, as history is shared.
    await send(alice, "meet me at the old oak");
    await message(alice, "meet me at the old oak").locator(".send-status").waitFor({ state: "detached", ...WAIT });

    await bob.locator(".room-item").filter({ hasText: "Invitation" }).click();
    await bob.getByRole("button", { name: "Accept" }).click();
    await message(bob, "meet me at the old oak").waitFor(WAIT);
    await bob.locator(".room-header .room-encrypted").waitFor(WAIT);
    await send(bob, "**see you** there");
    const reply = message(alice, "see you there");
    await reply.waitFor(WAIT);
    expect(await reply.locator("strong").textContent()).toBe("see you");
    await screenshot(alice, "e2ee-01-direct-chat-light");

    const stored = await storedEvents(directRoom, "bob");
    const said = stored.filter((e) => e.state_key === undefined && (e.sender === hearth.userId("alice") || e.sender === hearth.userId("bob")));
    expect(said.length).toBe(2);
    for (const event of said) {
      expect(event.type).toBe("m.room.encrypted");
      expect((event.content as Record<string, unknown>).algorithm).toBe("m.megolm.v1.aes-sha2");
    }
    const raw = JSON.stringify(stored);
    expect(raw).not.toContain("old oak");
    expect(raw).not.toContain("see you");
    expect(stored.some((e) => e.type === "m.room.encryption")).toBe(true);

    // An edit is encrypted too (its relation left in the clear), and applies on both sides.
    const mine = message(alice, "meet me at the old oak");
    await mine.hover();
    await mine.getByRole("button", { name: "Edit" }).click();
    await alice.waitForFunction(() => document.querySelector("textarea")?.value.includes("old oak"));
    await alice.locator(".composer textarea").fill("meet me at the *sycamore* oak");
    await alice.locator(".composer textarea").press("Enter");
    for (const page of [alice, bob]) {
      const edited = message(page, "oak");
      await edited.locator(".edited").waitFor(WAIT);
      expect(await edited.locator(".body em").textContent()).toBe("sycamore");
    }
    const edit = (await storedEvents(directRoom, "alice")).find((e) => e.sender === hearth.userId("alice") && e.type === "m.room.encrypted" && (e.content as Record<string, unknown>)["m.relates_to"]);
    expect((edit?.content as Record<string, Record<string, unknown>>)["m.relates_to"]?.rel_type).toBe("m.replace");
    expect(JSON.stringify(edit)).not.toContain("sycamore");
  });

  it("two people set up cross-signing and verify each other by emoji in their direct chat", async () => {
    for (const [page, name] of [
      [alice, "alice"],
      [bob, "bob"],
    ] as const) {
      // The first keys need no password (the server asks only when they would replace keys).
      await openAccount(page, name);
      await page.getByRole("button", { name: "Set up cross-signing" }).click();
      await page.getByRole("status").filter({ hasText: "Cross-signing is set up" }).waitFor(WAIT);
      // This session is signed with the new self-signing key, so it shows verified.
      await page.locator('.session-trust[data-verified="true"]').waitFor(WAIT);
      await page.keyboard.press("Escape");
    }
    const token = await hearth.login("alice");
    const keys = async () =>
      hearth.api<{ master_keys?: Record<string, { keys: Record<string, string>; signatures?: Record<string, Record<string, string>> }>; user_signing_keys?: Record<string, { keys: Record<string, string> }> }>(
        "POST",
        "/_matrix/client/v3/keys/query",
        token,
        { device_keys: { [hearth.userId("alice")]: [], [hearth.userId("bob")]: [] } },
      );
    const before = await keys();
    expect(Object.keys(before.master_keys ?? {}).sort()).toEqual([hearth.userId("alice"), hearth.userId("bob")].sort());

    // Alice sees Bob's published identity in the direct chat, not yet verified, and starts there.
    await alice.locator('.room-header .partner-trust[data-verified="false"]').waitFor(WAIT);
    await alice.locator(".room-header").getByRole("button", { name: "Verify" }).click();
    const incoming = bob.getByRole("dialog", { name: "Verify a person" });
    await incoming.getByText(`${hearth.userId("alice")} wants to verify you`).waitFor(WAIT);
    await incoming.getByRole("button", { name: "Accept" }).click();

    const seenByAlice = await emojiOn(alice);
    expect(seenByAlice).toHaveLength(7);
    expect(await emojiOn(bob)).toEqual(seenByAlice);
    await screenshot(bob, "e2ee-01b-verify-person-light");
    for (const page of [alice, bob]) await page.getByRole("dialog", { name: "Verify a person" }).getByRole("button", { name: "They match" }).click();
    for (const page of [alice, bob]) {
      await page.getByRole("dialog", { name: "Verify a person" }).getByRole("status").filter({ hasText: "Verified" }).waitFor(WAIT);
      await page.keyboard.press("Escape");
    }

    // Both show the other verified: Alice in the chat's header, Bob on Alice's profile,
    // with her session.
    await alice.locator('.room-header .partner-trust[data-verified="true"]').waitFor(WAIT);
    expect(await alice.locator(".room-header").getByRole("button", { name: "Verify" }).count()).toBe(0);
    await bob.locator('.room-header .partner-trust[data-verified="true"]').waitFor(WAIT);
    await message(bob, "oak").locator(".sender-link").click();
    const profile = bob.getByRole("dialog", { name: /Profile of alice/ });
    await profile.locator('.trust-status[data-verified="true"]').waitFor(WAIT);
    expect(await profile.locator(".trust-devices li").count()).toBeGreaterThan(0);
    expect(await profile.locator('.trust-devices li[data-verified="false"]').count()).toBe(0);
    await screenshot(bob, "e2ee-01c-verified-profile-light");
    await bob.keyboard.press("Escape");

    // The server holds each one's signature on the other's master key, by their user-signing key.
    const after = await keys();
    const aliceUsk = Object.keys(after.user_signing_keys?.[hearth.userId("alice")]?.keys ?? {})[0];
    expect(aliceUsk).toBeDefined();
    expect(Object.keys(after.master_keys?.[hearth.userId("bob")]?.signatures?.[hearth.userId("alice")] ?? {})).toContain(aliceUsk);

    // The verification ran in the room, in the clear, as the spec's in-room verification does.
    const stored = await storedEvents(directRoom, "alice");
    expect(stored.some((e) => e.type === "m.room.message" && (e.content as Record<string, unknown>).msgtype === "m.key.verification.request")).toBe(true);
    expect(stored.some((e) => e.type === "m.key.verification.done")).toBe(true);
    await timeline(bob).getByText("asked to verify").waitFor(WAIT);
  });

  it("a third person's client and this one read each other, and encrypted history loads after a reload", async () => {
    carol = await CryptoPeer.register(hearth, "carol");
    const created = await hearth.api<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", carol.token, {
      name: "Secret garden",
      preset: "private_chat",
      invite: [hearth.userId("alice")],
      initial_state: [{ type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } }],
    });
    groupRoom = created.room_id;
    await alice.locator(".room-item").filter({ hasText: "Secret garden" }).click();
    await alice.getByRole("button", { name: "Accept" }).click();
    await alice.locator(".room-header h2").filter({ hasText: "Secret garden" }).waitFor(WAIT);

    const members = [carol.userId, hearth.userId("alice")];
    for (const request of await carol.prepareRoomKey(groupRoom, members)) await carol.send(request);
    // More than the first sync's 30 events, so the oldest come from /messages.
    for (let i = 1; i <= 40; i++) await carol.sendEncrypted(groupRoom, { msgtype: "m.text", body: `garden note ${i}.` });
    await message(alice, "garden note 40.").waitFor(WAIT);

    // Alice answers: her client shares its own key with Carol's device, which reads it.
    await send(alice, "thanks carol");
    await message(alice, "thanks carol").locator(".send-status").waitFor({ state: "detached", ...WAIT });
    let heard = "";
    for (let round = 0; round < 10 && !heard; round++) {
      heard = await carol.readTimeline(await carol.sync(5000), groupRoom, hearth.userId("alice"));
    }
    expect(heard).toBe("thanks carol");

    // After a reload the keys come from IndexedDB; the oldest messages from /messages.
    await alice.reload();
    await alice.locator('.me[data-crypto="ready"]').waitFor(WAIT);
    await alice.locator(".room-header h2").filter({ hasText: "Secret garden" }).waitFor(WAIT);
    await message(alice, "garden note 40.").waitFor(WAIT);
    for (let i = 0; i < 10 && (await timeline(alice).getByText("garden note 1.", { exact: true }).count()) === 0; i++) {
      await timeline(alice).evaluate((el) => {
        el.scrollTop = 0;
      });
      await alice.waitForTimeout(300);
    }
    await message(alice, "garden note 1.").waitFor(WAIT);
    expect(await timeline(alice).locator(".body.undecryptable").count()).toBe(0);
  });

  it("shows a message whose key has not come as undecryptable, then decrypts it when the key arrives", async () => {
    await carol.rotateRoomKey(groupRoom);
    const held = await carol.prepareRoomKey(groupRoom, [carol.userId, hearth.userId("alice")]);
    expect(held.length).toBeGreaterThan(0);
    const eventId = await carol.sendEncrypted(groupRoom, { msgtype: "m.text", body: "the key comes later" });
    const tile = timeline(alice).locator(`article.event[data-event-id="${eventId}"]`);
    await tile.locator(".body.undecryptable").waitFor(WAIT);
    expect(await tile.textContent()).toContain("Unable to decrypt");
    await tile.scrollIntoViewIfNeeded();
    await screenshot(alice, "e2ee-02-undecryptable-light");

    for (const request of held) await carol.send(request);
    await tile.filter({ hasText: "the key comes later" }).waitFor(WAIT);
    expect(await tile.locator(".body.undecryptable").count()).toBe(0);
  });

  it("puts decrypted HTML through the sanitizer", async () => {
    await alice.evaluate(() => {
      (window as unknown as { __e2eeXss: string[] }).__e2eeXss = [];
    });
    const hostile =
      "<b>bold from afar</b><img src=x onerror=\"window.__e2eeXss.push('img')\">" +
      "<script>window.__e2eeXss.push('script')</script><a href=\"javascript:window.__e2eeXss.push('link')\">a link</a>" +
      "<iframe src=\"javascript:window.__e2eeXss.push('frame')\"></iframe><svg onload=\"window.__e2eeXss.push('svg')\"></svg>";
    const eventId = await carol.sendEncrypted(groupRoom, {
      msgtype: "m.text",
      body: "bold from afar",
      format: "org.matrix.custom.html",
      formatted_body: hostile,
    });
    const tile = timeline(alice).locator(`article.event[data-event-id="${eventId}"]`);
    await tile.locator("b").filter({ hasText: "bold from afar" }).waitFor(WAIT);
    const body = tile.locator(".body.html");
    expect(await body.locator("img, script, iframe, svg, [onerror], [onload]").count()).toBe(0);
    const link = body.locator("a").filter({ hasText: "a link" });
    expect(await link.count()).toBeLessThanOrEqual(1);
    if (await link.count()) expect(await link.getAttribute("href")).toBeNull();
    expect(await alice.evaluate(() => (window as unknown as { __e2eeXss: string[] }).__e2eeXss)).toEqual([]);
  });

  it("backs room keys up with a recovery key, and a new device reads earlier messages with it", async () => {
    await alice.getByRole("button", { name: `Account settings for ${hearth.userId("alice")}` }).click();
    await alice.getByRole("button", { name: "Set up key backup" }).click();
    const recoveryKey = (await alice.locator(".recovery-key").textContent(WAIT)) ?? "";
    expect(recoveryKey).toMatch(/^Es/);
    await alice.locator(".recovery-key").scrollIntoViewIfNeeded();
    await screenshot(alice, "e2ee-03-recovery-key-light");
    await alice.keyboard.press("Escape");

    // The keys reach the server, encrypted: wait until the backup holds some.
    const token = await hearth.login("alice");
    let count = 0;
    for (let round = 0; round < 100 && count === 0; round++) {
      count = (await hearth.api<{ count: number }>("GET", "/_matrix/client/v3/room_keys/version", token)).count;
      if (count === 0) await new Promise((r) => setTimeout(r, 100));
    }
    expect(count).toBeGreaterThan(0);

    // Alice signs in on another browser: a new device, without the direct chat's keys.
    const { page, context } = await newUserPage(browser, hearth);
    await page.goto("/");
    await page.getByLabel("Username").fill("alice");
    await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator('.me[data-crypto="ready"]').waitFor(WAIT);
    await page.locator(".room-list .room-item").filter({ hasText: "bob" }).first().click();
    const reply = timeline(page).locator("article.event").filter({ hasText: "bob" }).last();
    await reply.locator(".body.undecryptable").waitFor(WAIT);

    await page.getByRole("button", { name: `Account settings for ${hearth.userId("alice")}` }).click();
    await page.getByLabel("Recovery key").fill(recoveryKey);
    await page.getByRole("button", { name: "Restore keys" }).click();
    await page.getByRole("status").filter({ hasText: /Restored [1-9]\d* keys?/ }).waitFor(WAIT);
    await page.keyboard.press("Escape");
    await message(page, "see you there").waitFor(WAIT);
    await message(page, "sycamore").waitFor(WAIT);
    expect(await timeline(page).locator(".body.undecryptable").count()).toBe(0);

    // A wrong key is refused with a reason.
    await page.getByRole("button", { name: `Account settings for ${hearth.userId("alice")}` }).click();
    await page.getByLabel("Recovery key").fill(recoveryKey.slice(0, -1) + (recoveryKey.endsWith("2") ? "3" : "2"));
    await page.getByRole("button", { name: "Restore keys" }).click();
    await page.getByRole("alert").filter({ hasText: /typo|not for the server's backup|not a recovery key/ }).waitFor(WAIT);
    await context.close();
  });

  it("verifies another of one's sessions by comparing emoji", async () => {
    const { page: other, context } = await newUserPage(browser, hearth);
    await other.goto("/");
    await other.getByLabel("Username").fill("alice");
    await other.getByLabel("Password", { exact: true }).fill(PASSWORD);
    await other.getByRole("button", { name: "Sign in" }).click();
    await other.locator('.me[data-crypto="ready"]').waitFor(WAIT);
    const otherDevice = await other.evaluate(() => (JSON.parse(localStorage.getItem("hearth.session") ?? "{}") as { deviceId: string }).deviceId);

    await alice.getByRole("button", { name: `Account settings for ${hearth.userId("alice")}` }).click();
    await alice.locator(`[data-device-id="${otherDevice}"]`).getByRole("button", { name: "Verify" }).click();
    const incoming = other.getByRole("dialog", { name: "Verify a session" });
    await incoming.getByRole("button", { name: "Accept" }).click();

    const seenByAlice = await emojiOn(alice);
    expect(seenByAlice).toHaveLength(7);
    expect(await emojiOn(other)).toEqual(seenByAlice);
    await screenshot(alice, "e2ee-04-verification-light");
    for (const page of [alice, other]) await page.getByRole("button", { name: "They match" }).click();
    for (const page of [alice, other]) {
      await page.getByRole("dialog", { name: "Verify a session" }).getByRole("status").filter({ hasText: "Verified" }).waitFor(WAIT);
      await page.keyboard.press("Escape");
    }

    // The new session asked the old one for what it lacked: it now holds the cross-signing
    // keys, and reads earlier messages from the key backup without the recovery key.
    await openAccount(other, "alice");
    await other.locator('.cross-signing[data-state="on"]').waitFor(WAIT);
    await other.getByText("The keys of your encrypted messages are backed up").waitFor(WAIT);
    await other.keyboard.press("Escape");
    await other.locator(".room-list .room-item").filter({ hasText: "bob" }).first().click();
    await message(other, "see you there").waitFor(WAIT);
    await message(other, "sycamore").waitFor(WAIT);
    expect(await timeline(other).locator(".body.undecryptable").count()).toBe(0);
    await context.close();
  });

  it("resets cross-signing from another session with the password the server asks for", async () => {
    const { page: first, context: firstContext } = await newUserPage(browser, hearth);
    await signUp(first, "dave");
    await openAccount(first, "dave");
    await first.getByRole("button", { name: "Set up cross-signing" }).click();
    await first.locator('.cross-signing[data-state="on"]').waitFor(WAIT);
    await first.keyboard.press("Escape");

    const { page: second, context: secondContext } = await newUserPage(browser, hearth);
    await signIn(second, "dave");
    await openAccount(second, "dave");
    const section = second.locator(".cross-signing");
    await second.locator('.cross-signing[data-state="elsewhere"]').waitFor(WAIT);
    // Replacing published keys: the server asks for the password, which must be right.
    await section.getByRole("button", { name: "Reset cross-signing" }).click();
    await section.getByRole("alert").filter({ hasText: "asks for your password" }).waitFor(WAIT);
    await second.getByLabel("Current password").fill("not the password");
    await section.getByRole("button", { name: "Reset cross-signing" }).click();
    await section.getByRole("alert").filter({ hasText: "M_FORBIDDEN" }).waitFor(WAIT);
    expect(await section.getAttribute("data-state")).toBe("elsewhere");
    await second.getByLabel("Current password").fill(PASSWORD);
    await section.getByRole("button", { name: "Reset cross-signing" }).click();
    await second.locator('.cross-signing[data-state="on"]').waitFor(WAIT);
    await second.locator(`[data-device-id] .session-trust[data-verified="true"]`).first().waitFor(WAIT);

    // The first session's keys are no longer the published ones.
    await openAccount(first, "dave");
    await first.locator('.cross-signing[data-state="elsewhere"]').waitFor(WAIT);
    await firstContext.close();
    await secondContext.close();
  });

  it("runs encryption in one tab at a time: a second tab of the same session says so", async () => {
    const second = await alice.context().newPage();
    await second.goto("/");
    await second.locator('.me[data-crypto="unavailable"]').waitFor(WAIT);
    expect(await second.locator(".me").textContent()).toContain("Encryption unavailable");
    await second.close();
    // The first tab still reads and writes.
    await alice.locator(".room-list .room-item").filter({ hasText: "bob" }).first().click();
    await send(alice, "still here");
    await message(bob, "still here").waitFor(WAIT);
  });

  it("left the pages without errors", () => {
    expect(problems).toEqual([]);
  });
});
