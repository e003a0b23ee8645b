// Pictures, files and profiles between two people, through the real client and server.
import { readFileSync } from "node:fs";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Browser, Locator, Page } from "playwright-core";
import { Hearth, PASSWORD, launchBrowser, newUserPage, problems, screenshot, setCurrentTest } from "./harness";
import { gradientPng } from "./png";

let hearth: Hearth;
let browser: Browser;
let alice: Page;
let bob: Page;

const WAIT = { timeout: 15_000 };
/** Small, so the too-large path can be tried without a large upload. */
const UPLOAD_LIMIT = 1024 * 1024;

function timeline(page: Page): Locator {
  return page.getByRole("log", { name: "Messages" });
}

async function signIn(page: Page, name: string): Promise<void> {
  await page.goto("/");
  await page.getByLabel("Username").fill(name);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator(".me").waitFor(WAIT);
}

async function openRoom(page: Page, name: string): Promise<void> {
  await page.locator(".room-list .room-item").filter({ hasText: name }).first().click();
  await page.locator(".room-header h2").filter({ hasText: name }).waitFor(WAIT);
}

/** Drops files on an element the way a desktop drag does: a DataTransfer holding Files. */
async function dropFile(page: Page, selector: string, name: string, type: string, text: string): Promise<void> {
  await page.evaluate(
    ({ selector, name, type, text }) => {
      const target = document.querySelector(selector);
      if (!target) throw new Error(`nothing matches ${selector}`);
      const data = new DataTransfer();
      data.items.add(new File([text], name, { type }));
      target.dispatchEvent(new DragEvent("dragover", { bubbles: true, cancelable: true, dataTransfer: data }));
      target.dispatchEvent(new DragEvent("drop", { bubbles: true, cancelable: true, dataTransfer: data }));
    },
    { selector, name, type, text },
  );
}

/** Waits for an <img> to finish decoding, then answers its natural size. */
async function decoded(image: Locator): Promise<{ src: string; width: number; height: number }> {
  await image.waitFor(WAIT);
  const handle = await image.elementHandle();
  await image.page().waitForFunction((img) => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0, handle, WAIT);
  return image.evaluate((img: HTMLImageElement) => ({ src: img.src, width: img.naturalWidth, height: img.naturalHeight }));
}

beforeAll(async () => {
  // A slow refill, so the rate-limit test can empty Alice's allowance before the client asks.
  hearth = await Hearth.start({ HEARTH_MEDIA__MAX_UPLOAD_BYTES: String(UPLOAD_LIMIT), HEARTH_MEDIA__UPLOADS_PER_MINUTE: "1" });
  browser = await launchBrowser();
  ({ page: alice } = await newUserPage(browser, hearth));
  ({ page: bob } = await newUserPage(browser, hearth));
  const aliceToken = await hearth.register("alice");
  const bobToken = await hearth.register("bob");
  const room = await hearth.api<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", aliceToken, {
    name: "Photos",
    invite: [hearth.userId("bob")],
  });
  await hearth.api("POST", `/_matrix/client/v3/join/${encodeURIComponent(room.room_id)}`, bobToken, {});
  await signIn(alice, "alice");
  await signIn(bob, "bob");
  await openRoom(alice, "Photos");
  await openRoom(bob, "Photos");
});

beforeEach((context) => setCurrentTest(context.task.name));

afterEach(async (context) => {
  if (context.task.result?.state !== "fail") return;
  const name = context.task.name.replace(/\W+/g, "-");
  await screenshot(alice, `failed-media-${name}-alice`).catch(() => undefined);
  await screenshot(bob, `failed-media-${name}-bob`).catch(() => undefined);
  for (const page of [alice, bob]) await page.keyboard.press("Escape").catch(() => undefined);
});

afterAll(async () => {
  await browser?.close();
  await hearth?.stop();
});

describe("media and profiles in the web client", () => {
  it("sends a picture that the other side sees as a decoded thumbnail and opens full size", async () => {
    const picture = gradientPng(800, 500);
    await alice.getByLabel("File to send").setInputFiles({ name: "sunset.png", mimeType: "image/png", buffer: picture });
    const panel = alice.getByRole("group", { name: "Send sunset.png" });
    // The preview is local: its size is read before anything is uploaded.
    await panel.getByText("800×500").waitFor(WAIT);
    await screenshot(alice, "20-upload-preview-light");
    await panel.getByRole("button", { name: "Send file" }).click();
    await panel.waitFor({ state: "detached", ...WAIT });

    const thumb = timeline(bob).locator("article.event img.thumbnail").last();
    const seen = await decoded(thumb);
    expect(seen.src).toMatch(/^blob:/);
    expect(seen.width).toBeGreaterThan(0);
    // A server-made thumbnail (640x480 box, scaled), not the 800 px original.
    expect(seen).toMatchObject({ width: 640, height: 400 });
    // The box is sized from info.w/h, fitted into 320x240.
    expect(await thumb.getAttribute("width")).toBe("320");
    expect(await thumb.getAttribute("height")).toBe("200");
    await screenshot(bob, "21-image-light");

    // The event says what a client needs to reserve space before fetching anything.
    const token = await hearth.login("bob");
    const roomId = decodeURIComponent(new URL(bob.url()).hash.replace("#/room/", ""));
    const page = await hearth.api<{ chunk: { type: string; content: Record<string, unknown> }[] }>(
      "GET",
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=5`,
      token,
    );
    const sent = page.chunk.find((event) => event.content.msgtype === "m.image");
    expect(sent?.content).toMatchObject({ body: "sunset.png", info: { mimetype: "image/png", size: picture.length, w: 800, h: 500 } });
    expect(sent?.content.url).toMatch(/^mxc:\/\//);

    await timeline(bob).getByRole("button", { name: "Open sunset.png at full size" }).click();
    const full = await decoded(bob.getByRole("dialog", { name: "sunset.png" }).locator("img.full-image"));
    expect(full).toMatchObject({ width: 800, height: 500 });
    expect(full.src).toMatch(/^blob:/);
    await bob.emulateMedia({ colorScheme: "dark" });
    await screenshot(bob, "22-image-full-dark");
    await bob.emulateMedia({ colorScheme: "light" });
    await bob.getByRole("dialog", { name: "sunset.png" }).getByRole("button", { name: "Close" }).click();
  });

  it("sends a dropped file that arrives as a download link with the same bytes", async () => {
    const text = "Chapter one.\nIt was a bright cold day in April.\n";
    await dropFile(alice, ".room-view", "notes.txt", "text/plain", text);
    const panel = alice.getByRole("group", { name: "Send notes.txt" });
    await panel.getByRole("button", { name: "Send file" }).click();
    await panel.waitFor({ state: "detached", ...WAIT });

    const link = timeline(bob).getByRole("link", { name: "notes.txt" });
    await link.waitFor(WAIT);
    expect(await link.locator("xpath=..").textContent()).toContain(`(${text.length} B)`);
    const [download] = await Promise.all([bob.waitForEvent("download", WAIT), link.click()]);
    expect(download.suggestedFilename()).toBe("notes.txt");
    expect(readFileSync(await download.path(), "utf8")).toBe(text);
    await bob.emulateMedia({ colorScheme: "dark" });
    await screenshot(bob, "23-file-dark");
    await bob.emulateMedia({ colorScheme: "light" });
  });

  it("takes a pasted file into the composer and refuses files over the server's limit", async () => {
    await alice.locator(".composer textarea").evaluate((box) => {
      const data = new DataTransfer();
      data.items.add(new File([new Uint8Array(1536 * 1024)], "huge.bin", { type: "application/octet-stream" }));
      box.dispatchEvent(new ClipboardEvent("paste", { bubbles: true, cancelable: true, clipboardData: data }));
    });
    const panel = alice.getByRole("group", { name: "Send huge.bin" });
    await panel.getByRole("button", { name: "Send file" }).click();
    await panel.getByRole("alert").filter({ hasText: "M_TOO_LARGE" }).waitFor(WAIT);
    expect(await panel.getByRole("alert").textContent()).toContain("huge.bin (1.5 MB) is larger than this server accepts: 1.0 MB at most.");
    await screenshot(alice, "24-upload-too-large-light");
    await panel.getByRole("button", { name: "Cancel" }).click();
    await panel.waitFor({ state: "detached", ...WAIT });
    expect(await timeline(bob).getByText("huge.bin").count()).toBe(0);
  });

  it("sets a name, picture and details that the other side sees", async () => {
    await alice.getByRole("button", { name: "Edit your profile" }).click();
    const dialog = alice.getByRole("dialog", { name: "Profile" });
    await dialog.getByLabel("Display name").fill("Alice Liddell");
    await dialog.getByLabel("Pronouns").fill("she/her");
    await dialog.getByLabel("Time zone").fill("Europe/London");
    await dialog.getByLabel("About you").fill("Curious about rabbit holes.");
    // Not square: the client crops the centre.
    await dialog.getByLabel("Choose a picture").setInputFiles({ name: "me.png", mimeType: "image/png", buffer: gradientPng(300, 200, 60) });
    await dialog.getByRole("img", { name: "New picture" }).waitFor(WAIT);
    await screenshot(alice, "25-profile-edit-light");
    await dialog.getByRole("button", { name: "Save" }).click();
    await dialog.getByRole("status").filter({ hasText: "Profile saved." }).waitFor(WAIT);
    await alice.emulateMedia({ colorScheme: "dark" });
    await screenshot(alice, "25-profile-edit-dark");
    await alice.emulateMedia({ colorScheme: "light" });
    await dialog.getByRole("button", { name: "Close" }).first().click();
    await alice.locator(".me").getByText("Alice Liddell").waitFor(WAIT);

    const stored = await hearth.api<Record<string, unknown>>("GET", `/_matrix/client/v3/profile/${encodeURIComponent(hearth.userId("alice"))}`);
    expect(stored).toMatchObject({ displayname: "Alice Liddell", "m.tz": "Europe/London", "io.hearth.pronouns": "she/her", "io.hearth.bio": "Curious about rabbit holes." });
    expect(stored.avatar_url).toMatch(/^mxc:\/\//);

    // Bob: her messages now carry the new name and picture.
    const token = await hearth.login("alice");
    const roomId = decodeURIComponent(new URL(alice.url()).hash.replace("#/room/", ""));
    await hearth.api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/after-profile`, token, {
      msgtype: "m.text",
      body: "new name, who dis",
    });
    const tile = timeline(bob).locator("article.event").filter({ hasText: "new name, who dis" }).last();
    await tile.locator(".sender").filter({ hasText: "Alice Liddell" }).waitFor(WAIT);
    const avatar = await decoded(tile.locator('.avatar[data-avatar="image"] img'));
    expect(avatar.src).toMatch(/^blob:/);
    // Cropped square, no larger than the stored 256 px.
    expect(avatar.width).toBe(avatar.height);

    await bob.locator(".room-actions").getByRole("button", { name: "Settings" }).click();
    const settings = bob.getByRole("dialog", { name: "Room settings" });
    await settings.locator(`li[data-user-id="${hearth.userId("alice")}"]`).getByRole("button", { name: "Alice Liddell" }).waitFor(WAIT);
    await settings.getByRole("button", { name: "Close" }).click();

    await tile.locator(".sender").click();
    const card = bob.getByRole("dialog", { name: "Profile of Alice Liddell" });
    await card.locator('[data-field="pronouns"]').filter({ hasText: "she/her" }).waitFor(WAIT);
    expect(await card.locator('[data-field="time-zone"]').textContent()).toMatch(/^Europe\/London \(.+ there now\)$/);
    expect(await card.locator('[data-field="bio"]').textContent()).toBe("Curious about rabbit holes.");
    await decoded(card.locator('.avatar[data-avatar="image"] img'));
    await screenshot(bob, "26-profile-view-light");
    await bob.emulateMedia({ colorScheme: "dark" });
    await screenshot(bob, "26-profile-view-dark");
    await bob.emulateMedia({ colorScheme: "light" });
    await card.getByRole("button", { name: "Close" }).click();
  });

  it("follows a name changed on another device", async () => {
    const token = await hearth.login("alice");
    await hearth.api("PUT", `/_matrix/client/v3/profile/${encodeURIComponent(hearth.userId("alice"))}/displayname`, token, { displayname: "Alice L." });
    await alice.locator(".me").getByText("Alice L.").waitFor(WAIT);
    await timeline(bob).locator("article.event .sender").filter({ hasText: "Alice L." }).first().waitFor(WAIT);
  });

  it("shows the server's rate limit on an upload", async () => {
    const token = await hearth.login("alice");
    let status = 0;
    for (let i = 0; i < 40 && status !== 429; i++) {
      const response = await fetch(`${hearth.url}/_matrix/media/v3/upload?filename=filler.txt`, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "text/plain" },
        body: "filler",
      });
      status = response.status;
      await response.body?.cancel();
    }
    expect(status).toBe(429);

    await alice.getByLabel("File to send").setInputFiles({ name: "one-more.txt", mimeType: "text/plain", buffer: Buffer.from("one more") });
    const panel = alice.getByRole("group", { name: "Send one-more.txt" });
    await panel.getByRole("button", { name: "Send file" }).click();
    const alert = panel.getByRole("alert").filter({ hasText: "M_LIMIT_EXCEEDED" });
    await alert.waitFor(WAIT);
    expect(await alert.textContent()).toMatch(/^Too many attempts\. Try again in \d+ s\./);
    // Still there to try again later.
    expect(await panel.getByRole("button", { name: "Send file" }).isEnabled()).toBe(true);
    await panel.getByRole("button", { name: "Cancel" }).click();
  });

  it("had no uncaught errors or policy violations", () => {
    expect(problems).toEqual([]);
  });
});
