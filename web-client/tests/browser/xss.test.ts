// Another user (Mallory) sends an XSS corpus as messages, formatted messages, names,
// topics, file names, reactions and reasons; the victim's client renders all of it.
// The victim's page runs with its Content-Security-Policy switched off, so what is shown
// here is the client's own escaping and sanitizing, not the policy behind it. Any payload
// that ran would call `__xss`, open a dialog, ask for something on the marker host,
// navigate, or leave a live handler or script URL in the page.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Browser, Locator, Page } from "playwright-core";
import { Hearth, PASSWORD, launchBrowser, newUserPage, problems, screenshot, setCurrentTest } from "./harness";
import { MARKER_HOST, PAYLOADS, hostileText } from "./xss-corpus";

let hearth: Hearth;
let browser: Browser;
let victim: Page;
let mallory = "";
let carol = "";
let roomId = "";

const WAIT = { timeout: 15_000 };

/** What the victim's page did that it never should. */
const escaped = { dialogs: [] as string[], requests: [] as string[], navigations: [] as string[], popups: [] as string[] };
/** The URLs of the victim's sync sockets, so that the check on them is not vacuous. */
const sockets: string[] = [];

const NAMES = {
  mallory: hostileText("NAMEm"),
  carol: hostileText("NAMEc"),
  room: hostileText("ROOMn"),
  topic: hostileText("TOPICt"),
  file: `${hostileText("FILEf")}.html`,
  picture: `${hostileText("FILEp")}.svg`,
  kick: hostileText("KICKr"),
  ban: hostileText("BANr"),
  redaction: hostileText("REDr"),
  reaction: "<img src=x onerror=__xss('REACTk')>👍",
  leave: hostileText("LEAVEr"),
};

/** Plain-text bodies: the whole corpus as typed, ten payloads to a message. */
const PLAIN = Array.from({ length: Math.ceil(PAYLOADS.length / 10) }, (_, i) =>
  [`P${i}x plain`, ...PAYLOADS.slice(i * 10, i * 10 + 10).map((p) => p.html), "see http://xss.invalid/x?<script>__xss('P')</script>"].join("\n"),
);

const HOSTILE_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8" onload="parent.__xss(\'SVGo\')">' +
  "<script>parent.__xss('SVGs')</script>" +
  `<image href="http://${MARKER_HOST}/svg-image" width="8" height="8"/><rect width="8" height="8" fill="red"/></svg>`;

function timeline(page: Page): Locator {
  return page.getByRole("log", { name: "Messages" });
}

function tile(label: string): Locator {
  return timeline(victim).locator("article.event").filter({ hasText: label }).last();
}

function path(p: string): string {
  return p.replace("{room}", encodeURIComponent(roomId));
}

let txn = 0;
async function send(content: Record<string, unknown>, type = "m.room.message"): Promise<string> {
  const { event_id } = await hearth.api<{ event_id: string }>("PUT", path(`/_matrix/client/v3/rooms/{room}/send/${type}/x${txn++}`), mallory, content);
  return event_id;
}

async function upload(name: string, type: string, bytes: string): Promise<string> {
  const response = await fetch(`${hearth.url}/_matrix/media/v3/upload?filename=${encodeURIComponent(name)}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${mallory}`, "Content-Type": type },
    body: bytes,
  });
  const json = (await response.json()) as { content_uri: string };
  expect(response.status).toBe(200);
  return json.content_uri;
}

async function text(locator: Locator): Promise<string> {
  return (await locator.textContent()) ?? "";
}

beforeAll(async () => {
  hearth = await Hearth.start();
  browser = await launchBrowser();
  const { page, context } = await newUserPage(browser, hearth, { bypassCSP: true });
  victim = page;
  await context.addInitScript(() => {
    const hits: string[] = [];
    Object.defineProperty(window, "__xssHits", { value: hits });
    Object.defineProperty(window, "__xss", { value: (label: string) => hits.push(String(label)) });
  });
  const origin = new URL(hearth.url).origin;
  victim.on("dialog", (dialog) => escaped.dialogs.push(`${dialog.type()}: ${dialog.message()}`));
  victim.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(`${origin}/`) && !url.startsWith("blob:") && !url.startsWith("data:image/png")) escaped.requests.push(url);
    // HTTP requests carry the token in their header, never in the URL.
    if (/access_token=/i.test(url)) escaped.requests.push(`token in URL: ${url.split("?")[0]}`);
  });
  // Nor does the sync socket's URL (sockets are not "request"s): its first frame carries it.
  victim.on("websocket", (socket) => {
    sockets.push(socket.url());
    if (/access_token=/i.test(socket.url())) escaped.requests.push(`token in socket URL: ${socket.url().split("?")[0]}`);
  });
  victim.on("framenavigated", (frame) => {
    if (!frame.url().startsWith(`${origin}/`)) escaped.navigations.push(frame.url());
  });
  context.on("page", (popup) => escaped.popups.push(popup.url()));

  mallory = await hearth.register("mallory");
  carol = await hearth.register("carol");
  await hearth.register("victim");
  await hearth.api("PUT", `/_matrix/client/v3/profile/${encodeURIComponent(hearth.userId("mallory"))}/displayname`, mallory, { displayname: NAMES.mallory });
  await hearth.api("PUT", `/_matrix/client/v3/profile/${encodeURIComponent(hearth.userId("carol"))}/displayname`, carol, { displayname: NAMES.carol });
});

beforeEach((context) => setCurrentTest(context.task.name));

afterEach(async (context) => {
  if (context.task.result?.state !== "fail") return;
  await screenshot(victim, `failed-${context.task.name.replace(/\W+/g, "-")}-victim`).catch(() => undefined);
});

afterAll(async () => {
  await browser?.close();
  await hearth?.stop();
});

/** Static checks over the whole page: no live handler, script URL, foreign frame or script. */
async function inertPage(): Promise<string[]> {
  return victim.evaluate((origin) => {
    const found: string[] = [];
    const allowedTags = new Set([
      "font", "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol", "sup", "sub", "li", "b", "i", "u",
      "strong", "em", "s", "code", "hr", "br", "div", "table", "thead", "tbody", "tr", "th", "td", "caption", "pre", "span",
      "details", "summary",
    ]);
    const allowedAttrs = new Set(["href", "target", "rel", "color", "data-mx-color", "data-mx-bg-color", "data-mx-spoiler", "data-mx-maths", "class", "tabindex", "title", "start", "width", "height"]);
    for (const element of document.querySelectorAll("*")) {
      for (const attr of element.getAttributeNames()) {
        if (/^on/i.test(attr)) found.push(`${element.tagName} has ${attr}`);
        const value = element.getAttribute(attr) ?? "";
        if (/^(href|src|action|formaction|data|xlink:href|background|srcdoc|poster)$/i.test(attr) && !/^(https?:|mailto:|blob:|#|\/(?!\/))/i.test(value.trim())) {
          found.push(`${element.tagName} ${attr}=${value}`);
        }
      }
    }
    for (const script of document.querySelectorAll("script")) {
      if (!script.src.startsWith(`${origin}/`)) found.push(`script ${script.outerHTML.slice(0, 80)}`);
    }
    for (const element of document.querySelectorAll("iframe, frame, object, embed, base, meta[http-equiv], math, template")) {
      found.push(`element ${element.tagName}`);
    }
    for (const svg of document.querySelectorAll("svg")) {
      if (!svg.classList.contains("icon")) found.push(`svg ${svg.outerHTML.slice(0, 80)}`);
    }
    for (const style of document.querySelectorAll("style, link")) {
      if (style.closest("head") === null) found.push(`${style.tagName} in body`);
    }
    for (const body of document.querySelectorAll(".body.html")) {
      for (const element of body.querySelectorAll("*")) {
        const tag = element.tagName.toLowerCase();
        if (!allowedTags.has(tag)) found.push(`<${tag}> in a message`);
        for (const attr of element.getAttributeNames()) {
          if (!allowedAttrs.has(attr)) found.push(`<${tag} ${attr}> in a message`);
        }
        if (tag === "a" && element.hasAttribute("href") && element.getAttribute("rel") !== "noopener noreferrer") found.push("a link without rel=noopener");
        if (tag === "a" && element.hasAttribute("href") && element.getAttribute("target") !== "_blank") found.push("a link without target=_blank");
      }
    }
    return found;
  }, new URL(hearth.url).origin);
}

/** Fires the events hostile handlers listen for at every element, without clicking the client's own buttons. */
async function provoke(): Promise<void> {
  await victim.evaluate(() => {
    const kinds = ["mouseover", "mouseenter", "mousemove", "pointerover", "focus", "focusin", "load", "error", "toggle", "animationstart", "begin"];
    for (const element of document.querySelectorAll("body *")) {
      for (const kind of kinds) element.dispatchEvent(new Event(kind, { bubbles: false }));
    }
    // Links in messages: anything still clickable that is not an ordinary web link is a hole.
    for (const a of document.querySelectorAll<HTMLAnchorElement>(".body a")) {
      if (!/^https?:/i.test(a.getAttribute("href") ?? "")) a.click();
    }
  });
}

function hits(): Promise<string[]> {
  return victim.evaluate(() => [...(window as unknown as { __xssHits: string[] }).__xssHits]);
}

async function nothingRan(): Promise<void> {
  await victim.waitForTimeout(300);
  expect(await hits()).toEqual([]);
  expect(escaped).toEqual({ dialogs: [], requests: [], navigations: [], popups: [] });
  expect(sockets.length).toBeGreaterThan(0);
  expect(await inertPage()).toEqual([]);
}

describe("hostile content from another user", () => {
  it("an invitation with a hostile room name and inviter name shows both as text", async () => {
    const created = await hearth.api<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", mallory, {
      name: NAMES.room,
      topic: NAMES.topic,
      invite: [hearth.userId("victim"), hearth.userId("carol")],
    });
    roomId = created.room_id;
    await hearth.api("PUT", path("/_matrix/client/v3/rooms/{room}/state/m.room.avatar/"), mallory, { url: `javascript:__xss('AVATARr')` });
    await hearth.api("POST", path("/_matrix/client/v3/join/{room}"), carol, {});

    await victim.goto("/");
    await victim.getByLabel("Username").fill("victim");
    await victim.getByLabel("Password", { exact: true }).fill(PASSWORD);
    await victim.getByRole("button", { name: "Sign in" }).click();
    await victim.locator(".room-item").filter({ hasText: "Invitation" }).click();
    const invite = victim.locator(".invite-view");
    await invite.getByText("invited you").waitFor(WAIT);
    expect(await text(invite.locator("h2"))).toBe(NAMES.room);
    // The invite's stripped state carries the inviter's membership (as Synapse sends it),
    // so the hostile display name must show here, as text.
    expect(await text(invite.locator("p"))).toBe(`${NAMES.mallory} invited you.`);
    await nothingRan();

    await victim.getByRole("button", { name: "Accept" }).click();
    const header = victim.locator(".room-header");
    await header.locator("h2").filter({ hasText: "ROOMn" }).waitFor(WAIT);
    expect(await text(header.locator("h2"))).toBe(NAMES.room);
    expect(await text(header)).toContain(NAMES.topic);
    expect(await text(victim.locator(".room-list .room-item").first())).toContain(NAMES.room);
    await nothingRan();
  });

  it("the corpus as formatted messages is inert and its text readable", async () => {
    const kinds = ["m.text", "m.notice", "m.emote"];
    for (const [i, payload] of PAYLOADS.entries()) {
      await send({
        msgtype: kinds[i % kinds.length],
        body: `${payload.label} (formatted)`,
        format: "org.matrix.custom.html",
        formatted_body: payload.html,
      });
      // Ten at a time: a client that falls more than a timeline (30 events) behind gets a
      // limited sync and shows only the newest, which on a loaded machine left the first
      // payloads out of view.
      if (i % 10 === 9) await tile(payload.label).waitFor(WAIT);
    }
    const last = PAYLOADS[PAYLOADS.length - 1]!;
    await tile(last.label).waitFor(WAIT);
    for (const payload of PAYLOADS) {
      const body = tile(payload.label).locator(".body.html");
      expect(await body.count(), payload.html).toBe(1);
      expect(await text(body), payload.html).toContain(payload.label);
    }
    // The sender's name above the messages is the hostile name, as text.
    expect(await text(timeline(victim).locator(".event-header .sender").first())).toBe(NAMES.mallory);
    await tile(PAYLOADS.find((p) => p.html.startsWith("<p onmouseover"))!.label).locator(".body p").hover();
    await provoke();
    await nothingRan();
  });

  it("the corpus as plain bodies is shown exactly as typed", async () => {
    for (const body of PLAIN) await send({ msgtype: "m.text", body });
    for (const [i, body] of PLAIN.entries()) {
      const shown = tile(`P${i}x plain`).locator(".body.text");
      await shown.waitFor(WAIT);
      expect(await text(shown)).toBe(body);
    }
    // Web addresses in plain text become links to themselves, nothing else.
    const links = await timeline(victim).locator(".body.text a").evaluateAll((as) => as.map((a) => a.getAttribute("href")));
    expect(links.length).toBeGreaterThan(0);
    for (const href of links) expect(href).toMatch(/^https?:\/\/[^\s<>"]+$/);
    await provoke();
    await nothingRan();
  });

  it("replies, edits, reactions and a redaction reason stay text", async () => {
    const original = await send({ msgtype: "m.text", body: "R1x", format: "org.matrix.custom.html", formatted_body: "<b>R1x</b><img src=x onerror=__xss('R1')>" });
    await send({
      msgtype: "m.text",
      body: "> <@mallory> R1x\n\nR2x reply",
      format: "org.matrix.custom.html",
      formatted_body: `<mx-reply><blockquote><a href="javascript:__xss('R2')">R1x</a></blockquote></mx-reply>R2x reply<svg onload=__xss('R2')>`,
      "m.relates_to": { "m.in_reply_to": { event_id: original } },
    });
    const editTarget = await send({ msgtype: "m.text", body: "E1x before the edit" });
    await send({
      msgtype: "m.text",
      body: "* E2x",
      "m.new_content": { msgtype: "m.text", body: "E2x", format: "org.matrix.custom.html", formatted_body: "E2x edited<iframe src=javascript:__xss('E2')></iframe>" },
      "m.relates_to": { rel_type: "m.replace", event_id: editTarget },
    });
    await send({ "m.relates_to": { rel_type: "m.annotation", event_id: original, key: NAMES.reaction } }, "m.reaction");
    const doomed = await send({ msgtype: "m.text", body: "D1x doomed" });
    await hearth.api("PUT", path(`/_matrix/client/v3/rooms/{room}/redact/${encodeURIComponent(doomed)}/r${txn++}`), mallory, { reason: NAMES.redaction });

    const reply = tile("R2x reply");
    await reply.waitFor(WAIT);
    expect(await text(reply.locator(".reply-quote"))).toContain("R1x");
    await tile("E2x edited").locator(".edited").waitFor(WAIT);
    const reaction = timeline(victim).locator(`article[data-event-id="${original}"] .reaction`);
    await reaction.waitFor(WAIT);
    expect(await reaction.getAttribute("data-key")).toBe(NAMES.reaction);
    expect(await text(reaction)).toContain(NAMES.reaction);
    const deleted = timeline(victim).locator(".body.redacted").filter({ hasText: "REDr" });
    await deleted.waitFor(WAIT);
    expect(await text(deleted)).toBe(`Message deleted: ${NAMES.redaction}`);
    await provoke();
    await nothingRan();
  });

  it("hostile file names and an SVG picture with script are shown inert", async () => {
    const html = await upload(NAMES.file, "text/html", `<html><script>parent.__xss('FILEhtml')</script><img src="http://${MARKER_HOST}/file"></html>`);
    await send({ msgtype: "m.file", body: NAMES.file, filename: NAMES.file, url: html, info: { mimetype: "text/html", size: 80 } });
    const svg = await upload(NAMES.picture, "image/svg+xml", HOSTILE_SVG);
    // Small, so the client shows the original rather than asking for a thumbnail.
    await send({ msgtype: "m.image", body: NAMES.picture, url: svg, info: { mimetype: "image/svg+xml", w: 8, h: 8, size: HOSTILE_SVG.length } });

    const file = tile("FILEf").locator(".file-download");
    await file.waitFor(WAIT);
    expect(await text(file)).toBe(NAMES.file);
    // A picture's tile has no text: its name is in the button's label and the image's alt.
    const picture = timeline(victim).locator(".image-button").last();
    await picture.waitFor(WAIT);
    expect(await picture.getAttribute("aria-label")).toBe(`Open ${NAMES.picture} at full size`);
    await picture.locator("img, .error").first().waitFor(WAIT);
    await picture.click();
    const dialog = victim.getByRole("dialog");
    await dialog.locator("img, .error").first().waitFor(WAIT);
    expect(await text(dialog.locator("h2").first())).toBe(NAMES.picture);
    await provoke();
    await nothingRan();
    await dialog.getByRole("button", { name: "Close" }).click();
  });

  it("kick and ban reasons and a hostile member name are shown as text", async () => {
    await hearth.api("PUT", path("/_matrix/client/v3/rooms/{room}/send/m.room.message/c1"), carol, { msgtype: "m.text", body: "C1x hello" });
    const said = tile("C1x hello");
    await said.waitFor(WAIT);
    expect(await text(said.locator(".sender"))).toBe(NAMES.carol);
    await hearth.api("POST", path("/_matrix/client/v3/rooms/{room}/kick"), mallory, { user_id: hearth.userId("carol"), reason: NAMES.kick });
    await hearth.api("POST", path("/_matrix/client/v3/rooms/{room}/ban"), mallory, { user_id: hearth.userId("carol"), reason: NAMES.ban });
    const log = timeline(victim);
    await log.getByText("BANr", { exact: false }).first().waitFor(WAIT);
    // The kick and ban events carry no display name, so Carol is named by her user ID's localpart.
    const all = await text(log);
    expect(all).toContain(`${NAMES.mallory} removed carol: ${NAMES.kick}`);
    expect(all).toContain(`${NAMES.mallory} banned carol: ${NAMES.ban}`);

    // The member list in the room's settings.
    await victim.locator(".room-actions").getByRole("button", { name: "Settings" }).click();
    const settings = victim.getByRole("dialog", { name: "Room settings" });
    const row = settings.locator(`li[data-user-id="${hearth.userId("mallory")}"]`);
    await row.waitFor(WAIT);
    expect(await text(row)).toContain(NAMES.mallory);
    await provoke();
    await nothingRan();
    await settings.getByRole("button", { name: "Close" }).click();
  });

  it("being removed with a hostile reason shows it as text", async () => {
    await hearth.api("POST", path("/_matrix/client/v3/rooms/{room}/kick"), mallory, { user_id: hearth.userId("victim"), reason: NAMES.leave });
    const gone = victim.locator(".invite-view").filter({ hasText: "no longer in this room" });
    await gone.waitFor(WAIT);
    expect(await text(gone.locator("p"))).toBe(`You are no longer in this room: ${NAMES.mallory} removed you (${NAMES.leave}).`);
    await provoke();
    await nothingRan();
    await screenshot(victim, "10-hostile-removed");
  });
});

describe("the pages themselves", () => {
  it("threw nothing", () => {
    expect(problems).toEqual([]);
  });
});
