// GIF search in the composer against a fake Giphy that answers in Giphy's documented format.
import { createServer } from "node:http";
import type { Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { Hearth, PASSWORD, launchBrowser, newUserPage, problems, screenshot } from "./harness";

const WAIT = { timeout: 15_000 };
// A real 1×1 GIF.
const GIF = Buffer.from("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7", "base64");

let giphy: Server;
let giphyUrl = "";
const giphySaw: string[] = [];
let hearth: Hearth;
let browser: Browser;

function startGiphy(): Promise<void> {
  giphy = createServer((req, res) => {
    const url = new URL(req.url ?? "/", giphyUrl);
    giphySaw.push(url.pathname + url.search);
    const rendition = (id: string, name: string) => ({ url: `${giphyUrl}/media/${id}/${name}.gif`, width: "1", height: "1", size: String(GIF.length) });
    const gif = (id: string, title: string) => ({ id, title, images: { fixed_width_small: rendition(id, "100w"), original: rendition(id, "giphy") } });
    if (url.pathname === "/v1/gifs/search") {
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify({ data: [gif("catDance1", "Cat Dance GIF"), gif("catJump2", "Cat Jump GIF")], pagination: { total_count: 2, count: 2, offset: 0 } }));
    } else if (url.pathname.startsWith("/v1/gifs/")) {
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify({ data: gif(url.pathname.split("/")[3] ?? "", "Cat Dance GIF") }));
    } else if (url.pathname.startsWith("/media/")) {
      res.setHeader("Content-Type", "image/gif");
      res.end(GIF);
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  return new Promise((resolve) =>
    giphy.listen(0, "127.0.0.1", () => {
      const address = giphy.address();
      if (typeof address === "object" && address) giphyUrl = `http://127.0.0.1:${address.port}`;
      resolve();
    }),
  );
}

async function signUp(page: Page, name: string): Promise<void> {
  await page.goto("/");
  await page.getByRole("button", { name: "Create an account" }).click();
  await page.getByLabel("Username").fill(name);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByLabel("Confirm password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();
  await page.locator(".me").getByText(name).waitFor(WAIT);
}

beforeAll(async () => {
  await startGiphy();
  // The stand-in Giphy serves its files on loopback, which the default denylist refuses.
  hearth = await Hearth.start({
    HEARTH_GIFS__GIPHY_API_KEY: "testkey",
    HEARTH_GIFS__GIPHY_BASE_URL: giphyUrl,
    HEARTH_FEDERATION__IP_RANGE_DENYLIST: "[]",
  });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await hearth?.stop();
  giphy?.close();
});

describe("GIF search", () => {
  it("finds a GIF through the server and sends it as an image from the media repository", async () => {
    const { page } = await newUserPage(browser, hearth);
    await signUp(page, "carol");
    const token = await hearth.login("carol");
    const { room_id: roomId } = await hearth.api<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", token, { name: "Gif room" });
    await page.locator(".room-list .room-item").filter({ hasText: "Gif room" }).first().click();

    await page.getByRole("button", { name: "Send a GIF" }).click();
    await page.getByLabel("Search GIFs").fill("cat");
    const tile = page.getByRole("button", { name: "Cat Dance GIF" });
    // Previews come from the server as blob: URLs, never from Giphy.
    await tile.locator('img[src^="blob:"]').waitFor(WAIT);
    await screenshot(page, "gif-picker-light");
    await tile.click();
    // Shown like any picture: loaded from this server's media repository.
    const shown = page.getByRole("log", { name: "Messages" }).getByRole("img", { name: "Cat Dance GIF" });
    // Attached, not visible: a 1×1 picture is too small for Playwright to call visible.
    await shown.waitFor({ state: "attached", ...WAIT });
    await page.waitForFunction((img) => (img as HTMLImageElement).complete && (img as HTMLImageElement).naturalWidth > 0, await shown.elementHandle(), WAIT);

    const messages = await hearth.api<{ chunk: { type: string; content: Record<string, unknown> }[] }>(
      "GET",
      `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=10`,
      token,
    );
    const image = messages.chunk.find((e) => e.type === "m.room.message")?.content;
    expect(image?.msgtype).toBe("m.image");
    expect(String(image?.url)).toMatch(new RegExp(`^mxc://${hearth.serverName}/`));
    expect(image?.info).toEqual({ mimetype: "image/gif", w: 1, h: 1, size: GIF.length });
    expect(giphySaw.some((p) => p.startsWith("/v1/gifs/search?") && p.includes("api_key=testkey") && p.includes("q=cat"))).toBe(true);
    expect(problems).toEqual([]);
  });

  it("hides the GIF button when the server has no Giphy key", async () => {
    const plain = await Hearth.start();
    try {
      const { page, context } = await newUserPage(browser, plain);
      await signUp(page, "dave");
      const token = await plain.login("dave");
      await plain.api("POST", "/_matrix/client/v3/createRoom", token, { name: "Plain room" });
      const probe = page.waitForResponse((r) => r.url().includes("/_hearth/client/v1/gifs/search"), WAIT);
      await page.locator(".room-list .room-item").filter({ hasText: "Plain room" }).first().click();
      expect((await probe).status()).toBe(404);
      await page.locator(".composer textarea").waitFor(WAIT);
      // Let the answer reach the page before looking for what it would have shown.
      await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
      expect(await page.getByRole("button", { name: "Send a GIF" }).count()).toBe(0);
      await context.close();
    } finally {
      await plain.stop();
    }
  });
});
