// Two people use the real client against a real hearth, in Debian's chromium.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { Hearth, PASSWORD, launchBrowser, newUserPage, problems, screenshot, setCurrentTest } from "./harness";

let hearth: Hearth;
let browser: Browser;
let alice: Page;
let bob: Page;
let bobContext: BrowserContext;
let roomId = "";

const WAIT = { timeout: 15_000 };

async function signUp(page: Page, name: string): Promise<void> {
  await page.goto("/");
  await page.getByRole("button", { name: "Create an account" }).click();
  await page.getByLabel("Username").fill(name);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByLabel("Confirm password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.locator(".me").getByText(name).waitFor(WAIT);
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

async function openRoom(page: Page, name: string): Promise<void> {
  await page.locator(".room-list .room-item").filter({ hasText: name }).first().click();
  await page.locator(".room-header h2").filter({ hasText: name }).waitFor(WAIT);
}

beforeAll(async () => {
  hearth = await Hearth.start();
  browser = await launchBrowser();
  ({ page: alice } = await newUserPage(browser, hearth));
  // Bob's client is told to long-poll, so the /sync fallback is exercised alongside the socket.
  ({ page: bob, context: bobContext } = await newUserPage(browser, hearth, { poll: true }));
});

beforeEach((context) => setCurrentTest(context.task.name));

afterEach(async (context) => {
  if (context.task.result?.state !== "fail") return;
  const name = context.task.name.replace(/\W+/g, "-");
  await screenshot(alice, `failed-${name}-alice`).catch(() => undefined);
  await screenshot(bob, `failed-${name}-bob`).catch(() => undefined);
  // Leave no dialog open to block the next test.
  for (const page of [alice, bob]) await page.keyboard.press("Escape").catch(() => undefined);
});

afterAll(async () => {
  await browser?.close();
  await hearth?.stop();
});

describe("the web client", () => {
  it("is served with the server's headers", async () => {
    const response = await fetch(`${hearth.url}/`);
    expect(response.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(await response.text()).toContain('<div id="app">');
  });

  it("shows the server's sign-up errors, then signs both people up", async () => {
    await signUp(alice, "alice");
    await screenshot(alice, "01-empty-light");

    await bob.goto("/");
    await screenshot(bob, "00-sign-in-light");
    await bob.emulateMedia({ colorScheme: "dark" });
    await screenshot(bob, "00-sign-in-dark");
    await bob.emulateMedia({ colorScheme: "light" });
    await bob.getByRole("button", { name: "Create an account" }).click();
    await bob.getByLabel("Username").fill("alice");
    await bob.getByLabel("Password", { exact: true }).fill(PASSWORD);
    await bob.getByLabel("Confirm password").fill(PASSWORD);
    await bob.getByRole("button", { name: "Create account" }).click();
    await expect(bob.getByRole("alert").textContent(WAIT)).resolves.toContain("M_USER_IN_USE");
    await bob.getByLabel("Username").fill("bob");
    await bob.getByLabel("Password", { exact: true }).fill("short");
    await bob.getByLabel("Confirm password").fill("short");
    await bob.getByRole("button", { name: "Create account" }).click();
    await bob.getByRole("alert").filter({ hasText: "M_WEAK_PASSWORD" }).waitFor(WAIT);
    await screenshot(bob, "00-sign-up-error-light");

    await signUp(bob, "bob");
    // Alice is on the socket, Bob long-polls.
    await alice.locator('[data-connection="live"]').waitFor(WAIT);
    await bob.locator('[data-connection="polling"]').waitFor(WAIT);
  });

  it("wrong passwords are refused with the server's words", async () => {
    const { page, context } = await newUserPage(browser, hearth);
    await page.goto("/");
    await page.getByLabel("Username").fill("alice");
    await page.getByLabel("Password", { exact: true }).fill("not the password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "M_FORBIDDEN" }).waitFor(WAIT);
    await context.close();
  });

  it("creates a room, invites, and the invitee joins", async () => {
    await alice.getByRole("button", { name: "New room" }).click();
    await alice.getByLabel("Name").fill("Book club");
    await alice.getByLabel("Topic").fill("What we are reading");
    await alice.getByLabel("Public: anyone").check();
    await alice.getByLabel("Address").fill("books");
    await alice.getByRole("button", { name: "Create room" }).click();
    await alice.locator(".room-header h2").filter({ hasText: "Book club" }).waitFor(WAIT);
    roomId = decodeURIComponent(new URL(alice.url()).hash.replace("#/room/", ""));
    expect(roomId).toMatch(/^!/);

    await alice.locator(".room-actions").getByRole("button", { name: "Invite" }).click();
    await alice.getByLabel("User ID").fill(hearth.userId("bob"));
    await alice.getByRole("dialog").getByRole("button", { name: "Invite" }).click();
    await alice.getByRole("status").filter({ hasText: "Invited" }).waitFor(WAIT);
    await alice.getByRole("dialog").getByRole("button", { name: "Done" }).click();

    await bob.locator(".room-item").filter({ hasText: "Invitation" }).click();
    await bob.getByText("alice invited you").waitFor(WAIT);
    await bob.getByRole("button", { name: "Accept" }).click();
    await bob.locator(".room-header h2").filter({ hasText: "Book club" }).waitFor(WAIT);
    await timeline(alice).getByText("bob joined").waitFor(WAIT);
  });

  it("finds rooms in the public directory and joins by address", async () => {
    const token = await hearth.login("alice");
    await hearth.api("POST", "/_matrix/client/v3/createRoom", token, {
      name: "Lobby",
      topic: "Say hello",
      preset: "public_chat",
      visibility: "public",
      room_alias_name: "lobby",
    });
    await bob.getByRole("button", { name: "Explore" }).click();
    const directory = bob.getByRole("dialog", { name: "Explore public rooms" });
    await directory.locator("li").filter({ hasText: "Lobby" }).waitFor(WAIT);
    await directory.getByRole("searchbox").fill("book");
    await directory.locator("li").filter({ hasText: "Lobby" }).waitFor({ state: "detached", ...WAIT });
    const bookClub = directory.locator("li").filter({ hasText: "Book club" });
    await bookClub.getByRole("button", { name: "Open" }).waitFor(WAIT);
    await bob.emulateMedia({ colorScheme: "dark" });
    await screenshot(bob, "08-directory-dark");
    await bob.emulateMedia({ colorScheme: "light" });
    await directory.getByRole("button", { name: "Close" }).click();

    await bob.getByRole("button", { name: "Join", exact: true }).click();
    await bob.getByLabel("Room address or ID").fill(`#lobby:${hearth.serverName}`);
    await bob.getByRole("dialog").getByRole("button", { name: "Join" }).click();
    await bob.locator(".room-header h2").filter({ hasText: "Lobby" }).waitFor(WAIT);
    await timeline(bob).getByText("bob joined").waitFor(WAIT);

    await bob.locator(".room-actions").getByRole("button", { name: "Leave" }).click();
    await bob.locator(".room-item").filter({ hasText: "Lobby" }).waitFor({ state: "detached", ...WAIT });
    await openRoom(bob, "Book club");
  });

  it("delivers formatted messages live both ways", async () => {
    await send(alice, "**bold** *italic* `code` [a link](https://example.org/page)");
    const got = message(bob, "a link");
    await got.waitFor(WAIT);
    expect(await got.locator(".body strong").textContent()).toBe("bold");
    expect(await got.locator(".body em").textContent()).toBe("italic");
    expect(await got.locator(".body code").textContent()).toBe("code");
    const link = got.locator(".body a");
    expect(await link.getAttribute("href")).toBe("https://example.org/page");
    expect(await link.getAttribute("rel")).toBe("noopener noreferrer");
    expect(await link.getAttribute("target")).toBe("_blank");

    // :shortcode: completion: Tab takes the first suggestion.
    const box = bob.locator(".composer textarea");
    await box.fill("");
    await box.pressSequentially("nice :thu");
    await bob.getByRole("listbox", { name: "Emoji suggestions" }).getByRole("option", { name: /thumbsup/ }).waitFor(WAIT);
    await box.press("Tab");
    expect(await box.inputValue()).toBe("nice 👍 ");
    await box.fill("");

    await send(bob, "hello ~~world~~ *alice*");
    const back = message(alice, "hello");
    await back.waitFor(WAIT);
    expect(await back.locator(".body del").textContent()).toBe("world");
    expect(await back.locator(".body em").textContent()).toBe("alice");
    // Bob read Alice's message, and Alice sees it.
    await timeline(alice).locator(".read-by").filter({ hasText: "bob" }).first().waitFor(WAIT);
  });

  it("shows typing and presence", async () => {
    await bob.locator(".composer textarea").fill("I am typ");
    await bob.locator(".composer textarea").press("g");
    await alice.getByText("bob is typing…").waitFor(WAIT);
    await bob.locator(".composer textarea").fill("");
    await bob.locator(".composer textarea").press("Backspace");
    await alice.getByText("bob is typing…").waitFor({ state: "hidden", ...WAIT });

    await alice.locator(".room-actions").getByRole("button", { name: "Settings" }).click();
    const bobRow = alice.locator(`.member-list li[data-user-id="${hearth.userId("bob")}"]`);
    await bobRow.locator('.presence-dot[data-presence="online"]').waitFor(WAIT);
    await screenshot(alice, "04-settings-light");
    await alice.getByRole("dialog").getByRole("button", { name: "Close" }).click();
  });

  it("shows a reaction and an edit on both sides", async () => {
    const target = message(alice, "hello");
    await target.hover();
    await target.getByRole("button", { name: "React" }).click();
    await alice.getByRole("dialog", { name: "Pick a reaction" }).getByRole("button", { name: "thumbsup" }).click();
    for (const page of [alice, bob]) {
      await message(page, "hello").locator('.reaction[data-key="👍"]').filter({ hasText: "1" }).waitFor(WAIT);
    }

    const mine = message(alice, "a link");
    await mine.hover();
    await mine.getByRole("button", { name: "Edit" }).click();
    const box = alice.locator(".composer textarea");
    await alice.waitForFunction(() => document.querySelector("textarea")?.value.includes("a link"));
    await box.fill("**bold** and now *edited*");
    await box.press("Enter");
    for (const page of [alice, bob]) {
      const edited = message(page, "and now");
      await edited.locator(".edited").waitFor(WAIT);
      expect(await edited.locator(".body em").textContent()).toBe("edited");
      expect(await timeline(page).getByText("a link").count()).toBe(0);
    }
    await screenshot(alice, "02-room-light");
    await alice.emulateMedia({ colorScheme: "dark" });
    await screenshot(alice, "02-room-dark");
    await alice.emulateMedia({ colorScheme: "light" });
  });

  it("renders hostile HTML inert", async () => {
    const token = await hearth.login("bob");
    await hearth.api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/xss1`, token, {
      msgtype: "m.text",
      body: "hostile",
      format: "org.matrix.custom.html",
      formatted_body:
        '<p onmouseover="window.__xss=1">hostile</p><script>window.__xss=1</script>' +
        '<img src="x" onerror="window.__xss=1"><a href="javascript:window.__xss=1">click me</a>' +
        '<iframe src="javascript:window.__xss=1"></iframe><svg><script>window.__xss=1</script></svg>',
    });
    const tile = message(alice, "click me");
    await tile.waitFor(WAIT);
    await tile.getByText("click me").click();
    await tile.locator(".body p").hover();
    const state = await alice.evaluate(() => {
      const log = document.querySelector('[role="log"]');
      return {
        xss: (window as unknown as { __xss?: number }).__xss,
        scripts: log?.querySelectorAll("script, iframe, .body svg, .body img").length,
        handlers: log?.querySelectorAll("[onerror], [onmouseover], [onclick]").length,
        jsLinks: [...(log?.querySelectorAll("a") ?? [])].filter((a) => /javascript:/i.test(a.getAttribute("href") ?? "")).length,
      };
    });
    expect(state).toEqual({ xss: undefined, scripts: 0, handlers: 0, jsLinks: 0 });
  });

  it("loads older history when scrolling back", async () => {
    const token = await hearth.login("alice");
    const created = await hearth.api<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", token, {
      name: "History",
      invite: [hearth.userId("bob")],
    });
    for (let i = 1; i <= 60; i++) {
      await hearth.api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(created.room_id)}/send/m.room.message/h${i}`, token, {
        msgtype: "m.text",
        body: `history message ${i}`,
      });
    }
    const bobToken = await hearth.login("bob");
    await hearth.api("POST", `/_matrix/client/v3/join/${encodeURIComponent(created.room_id)}`, bobToken, {});

    await openRoom(bob, "History");
    await message(bob, "history message 60").waitFor(WAIT);
    const log = timeline(bob);
    for (let round = 0; round < 10; round++) {
      if (await log.getByText("history message 1", { exact: true }).count()) break;
      await log.evaluate((el) => el.scrollTo(0, 0));
      await bob.waitForTimeout(300);
    }
    await log.getByText("history message 1", { exact: true }).waitFor(WAIT);
    await log.getByText("This is the start of the room.").waitFor(WAIT);
    expect(await log.locator("article.event").filter({ hasText: "history message" }).count()).toBe(60);
    await expect(log.locator(".day-separator").first().textContent()).resolves.toContain("Today");
  });

  it("sends a message typed offline once the connection returns", async () => {
    await openRoom(bob, "Book club");
    await bobContext.setOffline(true);
    await send(bob, "typed while offline");
    await message(bob, "typed while offline").locator(".send-status").filter({ hasText: /Sending|Waiting/ }).waitFor(WAIT);
    await bob.waitForTimeout(1500);
    expect(await timeline(alice).getByText("typed while offline").count()).toBe(0);
    await bobContext.setOffline(false);
    await message(alice, "typed while offline").waitFor(WAIT);
    await bob.locator('[data-connection="polling"]').waitFor(WAIT);
    await bob.waitForTimeout(500);
    expect(await timeline(alice).getByText("typed while offline").count()).toBe(1);
    expect(await timeline(bob).getByText("typed while offline").count()).toBe(1);
  });

  it("starts a direct chat", async () => {
    await bob.getByRole("button", { name: "Direct chat" }).click();
    // Found through the user directory by name.
    await bob.getByLabel("User ID or name").fill("ali");
    await bob.getByRole("button", { name: "Message alice" }).click();
    await bob.locator(".room-header h2").filter({ hasText: "alice" }).waitFor(WAIT);
    await send(bob, "just between us");

    await alice.locator(".room-item").filter({ hasText: "Invitation" }).click();
    await alice.getByText("invited you to a direct chat").waitFor(WAIT);
    await alice.getByRole("button", { name: "Accept" }).click();
    await message(alice, "just between us").waitFor(WAIT);
    await alice.locator('.room-header .partner-presence[data-presence="online"]').waitFor(WAIT);
    await screenshot(alice, "03-direct-light");
  });

  it("badges unread rooms, sorts them by activity and marks where new messages start", async () => {
    // Alice is in the direct chat; Bob writes in the book club.
    await openRoom(bob, "Book club");
    await send(bob, "news for everyone");
    await send(bob, "alice: this one is for you");
    const item = alice.locator(".room-item").filter({ hasText: "Book club" });
    await item.locator(".badge.mention").filter({ hasText: "@1" }).waitFor(WAIT);
    expect(await item.getAttribute("aria-label")).toContain("2 unread");
    expect(await alice.locator(".room-item .room-item-name").first().textContent()).toBe("Book club");
    await expect(alice.title()).resolves.toBe("(2) Hearth");

    await openRoom(alice, "Book club");
    const marker = timeline(alice).locator(".new-marker");
    await marker.waitFor(WAIT);
    // The marker sits right before the first unread message.
    const next = await marker.evaluate((el) => el.nextElementSibling?.textContent ?? "");
    expect(next).toContain("news for everyone");
    await item.locator(".badge").waitFor({ state: "detached", ...WAIT });
  });

  it("lets a moderator delete a message and remove a member, and hides those controls from others", async () => {
    await openRoom(alice, "Book club");
    await openRoom(bob, "Book club");
    await send(bob, "buy cheap watches");
    const spam = message(alice, "buy cheap watches");
    await spam.waitFor(WAIT);

    // Bob is a plain user: no delete on Alice's messages, no remove buttons.
    const alicesMessage = message(bob, "and now");
    await alicesMessage.hover();
    expect(await alicesMessage.getByRole("button", { name: "Delete" }).count()).toBe(0);
    await bob.locator(".room-actions").getByRole("button", { name: "Settings" }).click();
    const bobDialog = bob.getByRole("dialog", { name: "Room settings" });
    await bobDialog.locator(".member-list").waitFor(WAIT);
    expect(await bobDialog.getByRole("button", { name: "Remove" }).count()).toBe(0);
    expect(await bobDialog.getByRole("combobox").first().isDisabled()).toBe(true);
    await bobDialog.getByRole("button", { name: "Close" }).click();

    await spam.hover();
    await spam.getByRole("button", { name: "Delete" }).click();
    for (const page of [alice, bob]) {
      await timeline(page).getByText("Message deleted").waitFor(WAIT);
      expect(await timeline(page).getByText("buy cheap watches").count()).toBe(0);
    }

    await alice.locator(".room-actions").getByRole("button", { name: "Settings" }).click();
    const dialog = alice.getByRole("dialog", { name: "Room settings" });
    const bobRow = dialog.locator(`li[data-user-id="${hearth.userId("bob")}"]`);
    await bobRow.getByRole("combobox").selectOption("50");
    await dialog.getByRole("status").filter({ hasText: "Moderator" }).waitFor(WAIT);
    await bobRow.getByRole("button", { name: "Remove" }).click();
    await dialog.getByRole("status").filter({ hasText: "removed" }).waitFor(WAIT);
    await dialog.getByRole("button", { name: "Close" }).click();
    await timeline(alice).getByText("alice removed bob").waitFor(WAIT);
    await bob.getByText("You are no longer in this room: alice removed you").waitFor(WAIT);

    // Invited again, then banned and unbanned from the same settings.
    const token = await hearth.login("alice");
    await hearth.api("POST", `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/invite`, token, { user_id: hearth.userId("bob") });
    await alice.locator(".room-actions").getByRole("button", { name: "Settings" }).click();
    const again = alice.getByRole("dialog", { name: "Room settings" });
    await again.locator(`li[data-user-id="${hearth.userId("bob")}"]`).filter({ hasText: "(invited)" }).getByRole("button", { name: "Ban" }).click();
    const banned = again.getByRole("region", { name: "Banned" });
    await banned.locator(`li[data-user-id="${hearth.userId("bob")}"]`).waitFor(WAIT);
    await timeline(alice).getByText("alice banned bob").waitFor(WAIT);
    await banned.getByRole("button", { name: "Unban" }).click();
    await banned.waitFor({ state: "detached", ...WAIT });
    await again.getByRole("button", { name: "Close" }).click();
    await timeline(alice).getByText("alice unbanned bob").waitFor(WAIT);
  });

  it("switches themes and fits a phone's width", async () => {
    await alice.getByRole("button", { name: /^Theme: system/ }).click();
    expect(await alice.evaluate(() => document.documentElement.dataset.theme)).toBe("light");
    await alice.getByRole("button", { name: /^Theme: light/ }).click();
    expect(await alice.evaluate(() => document.documentElement.dataset.theme)).toBe("dark");
    await screenshot(alice, "05-room-dark-toggle");
    await alice.setViewportSize({ width: 390, height: 780 });
    await screenshot(alice, "06-phone-dark");
    await alice.getByRole("button", { name: "Back to rooms" }).click();
    await alice.locator(".room-list").waitFor(WAIT);
    await screenshot(alice, "07-phone-rooms-dark");
  });
});

describe("the account dialog", () => {
  it("lists sessions, signs another one out, and changes the password", async () => {
    const { page: other, context } = await newUserPage(browser, hearth);
    await other.goto("/");
    await other.getByLabel("Username").fill("alice");
    await other.getByLabel("Password", { exact: true }).fill(PASSWORD);
    await other.getByRole("button", { name: "Sign in" }).click();
    await other.locator('[data-connection="live"]').waitFor(WAIT);
    const otherDevice = await other.evaluate(() => JSON.parse(localStorage.getItem("hearth.session") ?? "{}").deviceId as string);

    await alice.getByRole("button", { name: /^Account settings/ }).click();
    const dialog = alice.getByRole("dialog", { name: "Account" });
    const row = dialog.locator(`li[data-device-id="${otherDevice}"]`);
    await row.waitFor(WAIT);
    expect(await row.getByRole("button", { name: "Sign out" }).isDisabled()).toBe(true);
    await dialog.getByLabel("Current password").fill(PASSWORD);
    await screenshot(alice, "09-account-dark");
    await row.getByRole("button", { name: "Sign out" }).click();
    await row.waitFor({ state: "detached", ...WAIT });
    // The server ends the signed-out browser's sync socket as the token is revoked, so
    // it is back at the sign-in page without having to try anything.
    await other.getByText("Your session has ended").waitFor(WAIT);
    await context.close();

    await dialog.getByLabel("Current password").fill(PASSWORD);
    await dialog.getByLabel("New password", { exact: true }).fill("a new password for alice");
    await dialog.getByLabel("Confirm new password").fill("a new password for alice");
    await dialog.getByRole("button", { name: "Change password" }).click();
    await dialog.getByRole("status").filter({ hasText: "Password changed" }).waitFor(WAIT);
    const login = await fetch(`${hearth.url}/_matrix/client/v3/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ type: "m.login.password", identifier: { type: "m.id.user", user: "alice" }, password: "a new password for alice" }),
    });
    expect(login.status).toBe(200);
  });
});

describe("the pages themselves", () => {
  it("threw nothing and broke no Content-Security-Policy rule", () => {
    expect(problems).toEqual([]);
  });
});
