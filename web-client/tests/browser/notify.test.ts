// Browser notifications and the unread count in the title, through the real client and server.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { Hearth, PASSWORD, launchBrowser, newUserPage, problems, screenshot, setCurrentTest } from "./harness";

let hearth: Hearth;
let browser: Browser;
let alice: Page;
let aliceContext: BrowserContext;
let aliceToken: string;
let bobToken: string;
let garden: string;
let other: string;
let txn = 0;

const WAIT = { timeout: 15_000 };

interface Recorded {
  title: string;
  body: string;
}

declare global {
  interface Window {
    __notifications: Recorded[];
    __notificationObjects: Notification[];
    __setHidden: (hidden: boolean) => void;
  }
}

/**
 * Runs in the page before its own scripts: Notification stays the browser's real class,
 * subclassed to record what is shown; and the tab's visibility becomes a switch, as a
 * headless browser is always "visible".
 */
function instrument(): void {
  window.__notifications = [];
  window.__notificationObjects = [];
  const Real = window.Notification;
  class Recording extends Real {
    constructor(title: string, options?: NotificationOptions) {
      super(title, options);
      window.__notifications.push({ title, body: options?.body ?? "" });
      window.__notificationObjects.push(this);
    }
  }
  Object.defineProperty(window, "Notification", { value: Recording, configurable: true, writable: true });
  let hidden = false;
  Object.defineProperty(Document.prototype, "visibilityState", { get: () => (hidden ? "hidden" : "visible"), configurable: true });
  Object.defineProperty(Document.prototype, "hidden", { get: () => hidden, configurable: true });
  window.__setHidden = (value: boolean) => {
    hidden = value;
    document.dispatchEvent(new Event("visibilitychange"));
  };
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

function timeline(page: Page): Locator {
  return page.getByRole("log", { name: "Messages" });
}

async function bobSays(roomId: string, body: string, mentions: string[] = []): Promise<void> {
  const content: Record<string, unknown> = { msgtype: "m.text", body };
  if (mentions.length) content["m.mentions"] = { user_ids: mentions };
  await hearth.api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/n${txn++}`, bobToken, content);
}

async function recorded(): Promise<Recorded[]> {
  return alice.evaluate(() => window.__notifications);
}

async function waitForNotifications(count: number): Promise<Recorded[]> {
  await alice.waitForFunction((n) => window.__notifications.length >= n, count, WAIT);
  return recorded();
}

async function setHidden(hidden: boolean): Promise<void> {
  await alice.evaluate((value) => window.__setHidden(value), hidden);
}

interface Rule {
  rule_id: string;
  enabled?: boolean;
  conditions?: unknown[];
  actions?: unknown[];
}

/** Alice's own rules (not the server's predefined ones) for a room, as the server has them. */
async function roomRules(roomId: string): Promise<{ override: Rule[]; room: Rule[] }> {
  const rules = await hearth.api<{ global: { override: Rule[]; room: Rule[] } }>("GET", "/_matrix/client/v3/pushrules/", aliceToken);
  return {
    override: rules.global.override.filter((r) => r.rule_id === roomId),
    room: rules.global.room.filter((r) => r.rule_id === roomId),
  };
}

async function setLevel(label: string): Promise<void> {
  await alice.locator(".room-actions").getByRole("button", { name: "Settings" }).click();
  const dialog = alice.getByRole("dialog", { name: "Room settings" });
  await dialog.getByRole("radio", { name: label }).check();
  await dialog.getByRole("status").filter({ hasText: `Notifications: ${label}.` }).waitFor(WAIT);
  expect(await dialog.getByRole("radio", { name: label }).isChecked()).toBe(true);
  if (label === "Mute") await screenshot(alice, "30-notification-settings-light");
  await dialog.getByRole("button", { name: "Close" }).click();
}

beforeAll(async () => {
  hearth = await Hearth.start();
  browser = await launchBrowser();
  ({ page: alice, context: aliceContext } = await newUserPage(browser, hearth));
  await aliceContext.grantPermissions(["notifications"], { origin: hearth.url });
  await aliceContext.addInitScript(instrument);
  aliceToken = await hearth.register("alice");
  bobToken = await hearth.register("bob");
  await hearth.api("PUT", `/_matrix/client/v3/profile/${encodeURIComponent(hearth.userId("bob"))}/displayname`, bobToken, {
    displayname: "Bob Builder",
  });
  for (const name of ["Garden", "Other"]) {
    const room = await hearth.api<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", aliceToken, {
      name,
      invite: [hearth.userId("bob")],
    });
    await hearth.api("POST", `/_matrix/client/v3/join/${encodeURIComponent(room.room_id)}`, bobToken, {});
    if (name === "Garden") garden = room.room_id;
    else other = room.room_id;
  }
  // History from before the page loaded: it must not notify.
  await bobSays(garden, "from before you came");
  await signIn(alice, "alice");
  await openRoom(alice, "Garden");
  await timeline(alice).getByText("from before you came").waitFor(WAIT);
});

beforeEach((context) => setCurrentTest(context.task.name));

afterEach(async (context) => {
  if (context.task.result?.state !== "fail") return;
  const name = context.task.name.replace(/\W+/g, "-");
  await screenshot(alice, `failed-notify-${name}-alice`).catch(() => undefined);
  await alice.keyboard.press("Escape").catch(() => undefined);
});

afterAll(async () => {
  await browser?.close();
  await hearth?.stop();
});

describe("notifications in the web client", () => {
  it("offers notifications only once a room is opened, and remembers 'Not now'", async () => {
    // A browser that has not been asked yet: no permission granted.
    const { context, page } = await newUserPage(browser, hearth);
    await signIn(page, "alice");
    await page.locator(".room-list .room-item").first().waitFor(WAIT);
    const banner = page.getByRole("region", { name: "Notifications" });
    expect(await banner.count()).toBe(0);
    await openRoom(page, "Other");
    await banner.getByRole("button", { name: "Enable notifications" }).waitFor(WAIT);
    await screenshot(page, "31-notification-banner-light");
    await banner.getByRole("button", { name: "Not now" }).click();
    await banner.waitFor({ state: "detached", ...WAIT });
    await page.reload();
    await page.locator(".room-header h2").filter({ hasText: "Other" }).waitFor(WAIT);
    await openRoom(page, "Garden");
    expect(await banner.count()).toBe(0);
    // Account settings still offer it.
    await page.getByRole("button", { name: /^Account settings/ }).click();
    const account = page.getByRole("dialog", { name: "Account" });
    await account.getByRole("button", { name: "Enable notifications" }).waitFor(WAIT);
    await context.close();

    // Where permission is granted, they say so.
    await alice.getByRole("button", { name: /^Account settings/ }).click();
    const dialog = alice.getByRole("dialog", { name: "Account" });
    await dialog.getByText("Notifications are on for this browser.").waitFor(WAIT);
    await dialog.getByRole("button", { name: "Close" }).click();
  });

  it("notifies of Bob's message in a hidden tab and counts it in the title until read", async () => {
    expect(await recorded()).toEqual([]);
    expect(await alice.title()).toBe("Hearth");
    await setHidden(true);
    await bobSays(garden, "Are you there?");
    const [shown] = await waitForNotifications(1);
    expect(shown).toEqual({ title: "Bob Builder (Garden)", body: "Are you there?" });
    await alice.waitForFunction(() => document.title === "(1) Hearth", undefined, WAIT);
    // Back on the tab with the room open: read, and the count goes.
    await setHidden(false);
    await alice.waitForFunction(() => document.title === "Hearth", undefined, WAIT);
  });

  it("stays silent for a muted room and leaves it out of the count", async () => {
    await setLevel("Mute");
    // Stored as Element stores it: an override rule for the room, doing nothing.
    const muted = await roomRules(garden);
    expect(muted.room).toEqual([]);
    expect(muted.override).toHaveLength(1);
    expect(muted.override[0]).toMatchObject({
      enabled: true,
      conditions: [{ kind: "event_match", key: "room_id", pattern: garden }],
      actions: [],
    });
    await setHidden(true);
    await bobSays(garden, "nobody hears this");
    await timeline(alice).getByText("nobody hears this").waitFor(WAIT);
    // Sent after the muted one, so once this notifies the muted one has been weighed too.
    await bobSays(other, "but this one");
    const all = await waitForNotifications(2);
    expect(all.map((n) => n.body)).toEqual(["Are you there?", "but this one"]);
    expect(all[1]?.title).toBe("Bob Builder (Other)");
    // Garden's unread message is muted: only Other's counts.
    await alice.waitForFunction(() => document.title === "(1) Hearth", undefined, WAIT);

    // Clicking the notification opens its room.
    await alice.evaluate(() => window.__notificationObjects[1]?.dispatchEvent(new Event("click")));
    await alice.locator(".room-header h2").filter({ hasText: "Other" }).waitFor(WAIT);
    await setHidden(false);
    await alice.waitForFunction(() => document.title === "Hearth", undefined, WAIT);
  });

  it("notifies a mentions-only room of mentions alone, also while another room is open", async () => {
    await openRoom(alice, "Garden");
    await setLevel("Mentions only");
    const quiet = await roomRules(garden);
    expect(quiet.override).toEqual([]);
    expect(quiet.room).toHaveLength(1);
    expect(quiet.room[0]).toMatchObject({ enabled: true, actions: [] });
    await openRoom(alice, "Other");
    // Visible, but Garden is not the open room.
    await bobSays(garden, "just chatting");
    await bobSays(garden, "alice, look", [hearth.userId("alice")]);
    const all = await waitForNotifications(3);
    expect(all.map((n) => n.body)).toEqual(["Are you there?", "but this one", "alice, look"]);
    expect(all[2]?.title).toBe("Bob Builder (Garden)");
    // Nor does the open room notify while it is on screen.
    await bobSays(other, "you can see this");
    await timeline(alice).getByText("you can see this").waitFor(WAIT);
    await bobSays(garden, "alice again", [hearth.userId("alice")]);
    const later = await waitForNotifications(4);
    expect(later.map((n) => n.body)).toEqual(["Are you there?", "but this one", "alice, look", "alice again"]);
  });

  it("follows a change made on another device, and All messages removes the rules", async () => {
    await openRoom(alice, "Garden");
    await alice.locator(".room-actions").getByRole("button", { name: "Settings" }).click();
    const dialog = alice.getByRole("dialog", { name: "Room settings" });
    expect(await dialog.getByRole("radio", { name: "Mentions only" }).isChecked()).toBe(true);
    // Another session of Alice's mutes Garden; the open dialog follows through sync.
    await hearth.api("PUT", `/_matrix/client/v3/pushrules/global/override/${encodeURIComponent(garden)}`, aliceToken, {
      conditions: [{ kind: "event_match", key: "room_id", pattern: garden }],
      actions: [],
    });
    await alice.waitForFunction(
      () => document.querySelector<HTMLInputElement>('input[name="notification-level"][value="mute"]')?.checked === true,
      undefined,
      WAIT,
    );
    await dialog.getByRole("button", { name: "Close" }).click();
    await setLevel("All messages");
    expect(await roomRules(garden)).toEqual({ override: [], room: [] });
  });

  it("had no uncaught errors or policy violations", () => {
    expect(problems).toEqual([]);
  });
});
