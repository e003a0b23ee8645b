// "Notify me when Hearth is closed": the Web Push subscription, the MSC4174 pusher and the
// service worker, through the real client and server.
//
// Chromium's own push service (Google's) cannot be reached here, and headless Chromium
// refuses `PushManager.subscribe` outright. So the page's `subscribe` is replaced by one
// that returns a subscription whose endpoint is a test push service in this process (HTTPS,
// with a certificate from a CA made at test time that the server is told to trust) and whose
// keys were made here. Everything else is real: the switch in account settings, the server's
// VAPID key passed to `subscribe`, the pusher registration, the server's encrypted
// validation push and real notification pushes arriving at the test push service, and the
// service worker handling them. What the browser vendor's push service would do (decrypt
// with the subscription's private key and hand the message to the worker) is done by the
// test: it decrypts (RFC 8291) and delivers the plaintext to the worker with the DevTools
// protocol's `ServiceWorker.deliverPushMessage`. Clicking a notification cannot be driven
// through the protocol; where a click leads is covered by the unit tests (pushMessage.test.ts).
import { execFileSync } from "node:child_process";
import { createDecipheriv, createECDH, hkdfSync, randomBytes } from "node:crypto";
import type { ECDH } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:https";
import type { Server } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { Hearth, PASSWORD, launchBrowser, newUserPage, problems, screenshot, setCurrentTest } from "./harness";

const WAIT = { timeout: 20_000 };

let certDir: string;
let hearth: Hearth;
let browser: Browser;
let pushService: Server;
let pushUrl: string;
const pushes: Buffer[] = [];

/** A CA and a certificate for 127.0.0.1 signed by it, with Debian's openssl. */
function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
    "-days", "2", "-subj", "/CN=Hearth web test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign");
  run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost");
  writeFileSync(join(dir, "leaf.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n");
  run("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext");
  return { ca: join(dir, "ca.pem"), cert: join(dir, "leaf.pem"), key: join(dir, "leaf.key") };
}

/** What the browser vendor's push service leaves to the browser: RFC 8291 decryption. */
function decrypt(body: Buffer, ecdh: ECDH, auth: Buffer): unknown {
  const salt = body.subarray(0, 16);
  const idlen = body[20] ?? 0;
  const senderKey = body.subarray(21, 21 + idlen);
  const sealed = body.subarray(21 + idlen);
  const keyInfo = Buffer.concat([Buffer.from("WebPush: info\0"), ecdh.getPublicKey(), senderKey]);
  const ikm = Buffer.from(hkdfSync("sha256", ecdh.computeSecret(senderKey), auth, keyInfo, 32));
  const cek = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: aes128gcm\0"), 16));
  const nonce = Buffer.from(hkdfSync("sha256", ikm, salt, Buffer.from("Content-Encoding: nonce\0"), 12));
  const decipher = createDecipheriv("aes-128-gcm", cek, nonce);
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  const plain = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - 16)), decipher.final()]);
  let end = plain.length - 1;
  while (end > 0 && plain[end] === 0) end--;
  expect(plain[end]).toBe(2); // the last record's delimiter
  return JSON.parse(plain.subarray(0, end).toString("utf8"));
}

async function waitForPushes(n: number): Promise<Buffer[]> {
  const deadline = Date.now() + WAIT.timeout;
  while (pushes.length < n) {
    if (Date.now() > deadline) throw new Error(`only ${pushes.length} of ${n} pushes arrived`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return pushes.slice();
}

interface FakeSubscription {
  endpoint: string;
  p256dh: string;
  auth: string;
}

declare global {
  interface Window {
    __serverKeyUsed: string | null;
  }
}

/** Runs in the page: `subscribe` answers with the test's subscription (see above). */
function fakePushManager(sub: FakeSubscription): void {
  window.__serverKeyUsed = null;
  let current: PushSubscription | null = null;
  const b64url = (buffer: ArrayBuffer) =>
    btoa(String.fromCharCode(...new Uint8Array(buffer))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  PushManager.prototype.subscribe = async function (options?: PushSubscriptionOptionsInit) {
    const key = options?.applicationServerKey;
    const bytes = key instanceof ArrayBuffer ? key : ArrayBuffer.isView(key) ? key.buffer.slice(key.byteOffset, key.byteOffset + key.byteLength) : null;
    window.__serverKeyUsed = bytes ? b64url(bytes as ArrayBuffer) : null;
    const fake = {
      endpoint: sub.endpoint,
      expirationTime: null,
      options: { userVisibleOnly: true, applicationServerKey: bytes },
      getKey: () => null,
      toJSON: () => ({ endpoint: sub.endpoint, expirationTime: null, keys: { p256dh: sub.p256dh, auth: sub.auth } }),
      unsubscribe: async () => {
        current = null;
        return true;
      },
    };
    current = fake as unknown as PushSubscription;
    return current;
  };
  PushManager.prototype.getSubscription = async () => current;
}

/** Hands a push message's plaintext to the service worker, as the browser would. */
async function deliver(context: BrowserContext, via: Page, message: unknown): Promise<void> {
  const cdp = await context.newCDPSession(via);
  const registrations: string[] = [];
  cdp.on("ServiceWorker.workerRegistrationUpdated", (event: { registrations: { registrationId: string; scopeURL: string; isDeleted: boolean }[] }) => {
    for (const r of event.registrations) if (!r.isDeleted && r.scopeURL === `${hearth.url}/`) registrations.push(r.registrationId);
  });
  await cdp.send("ServiceWorker.enable");
  const deadline = Date.now() + WAIT.timeout;
  while (registrations.length === 0) {
    if (Date.now() > deadline) throw new Error("no service worker registration");
    await new Promise((r) => setTimeout(r, 50));
  }
  await cdp.send("ServiceWorker.deliverPushMessage", {
    origin: `${hearth.url}/`,
    registrationId: registrations[0]!,
    data: JSON.stringify(message),
  });
  await cdp.detach();
}

async function signIn(page: Page, name: string): Promise<void> {
  await page.goto("/");
  await page.getByLabel("Username").fill(name);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator(".me").waitFor(WAIT);
}

async function pushers(token: string): Promise<{ kind: string; pushkey: string; activated?: boolean; data: Record<string, unknown> }[]> {
  const answer = await hearth.api<{ pushers: { kind: string; pushkey: string; activated?: boolean; data: Record<string, unknown> }[] }>(
    "GET",
    "/_matrix/client/v3/pushers",
    token,
  );
  return answer.pushers;
}

async function until<T>(what: string, probe: () => Promise<T | null | undefined | false>): Promise<T> {
  const deadline = Date.now() + WAIT.timeout;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  certDir = mkdtempSync(join(tmpdir(), "hearth-webpush-"));
  const { ca, cert, key } = makeCertificates(certDir);
  pushService = createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      if (request.method === "POST" && request.headers["content-encoding"] === "aes128gcm") pushes.push(Buffer.concat(chunks));
      response.writeHead(201).end();
    });
  });
  await new Promise<void>((r) => pushService.listen(0, "127.0.0.1", r));
  const address = pushService.address();
  pushUrl = `https://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/push/alice`;
  // The test push service is on loopback, which push services are otherwise refused.
  hearth = await Hearth.start({
    HEARTH_FEDERATION__IP_RANGE_DENYLIST: "[]",
    HEARTH_FEDERATION__EXTRA_CA_FILES: JSON.stringify([ca]),
  });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await hearth?.stop();
  await new Promise((r) => pushService?.close(r));
  rmSync(certDir, { recursive: true, force: true });
  expect(problems).toEqual([]);
});

beforeEach((ctx) => setCurrentTest(ctx.task.name));
afterEach(() => setCurrentTest(""));

describe("Web Push", () => {
  it("subscribes from the settings switch, activates the pusher and shows pushes with the tab closed", async () => {
    const aliceToken = await hearth.register("alice");
    const bobToken = await hearth.register("bob");
    const room = (await hearth.api<{ room_id: string }>("POST", "/_matrix/client/v3/createRoom", bobToken, { preset: "public_chat", name: "general" })).room_id;
    await hearth.api("POST", `/_matrix/client/v3/join/${encodeURIComponent(room)}`, aliceToken, {});
    const caps = await hearth.api<{ capabilities: Record<string, { vapid: string }> }>("GET", "/_matrix/client/v3/capabilities", aliceToken);
    const vapid = caps.capabilities["m.webpush"]!.vapid;

    const ecdh = createECDH("prime256v1");
    ecdh.generateKeys();
    const auth = randomBytes(16);
    const sub = { endpoint: pushUrl, p256dh: ecdh.getPublicKey("base64url"), auth: auth.toString("base64url") };

    const { context, page } = await newUserPage(browser, hearth);
    await context.grantPermissions(["notifications"], { origin: hearth.url });
    await context.addInitScript(fakePushManager, sub);
    await signIn(page, "alice");

    await page.getByRole("button", { name: /Account settings for/ }).click();
    const dialog = page.getByRole("dialog", { name: "Account" });
    const toggle = dialog.getByRole("checkbox", { name: "Notify me when Hearth is closed" });
    await toggle.check();
    await until("the switch to settle", async () => (await toggle.isChecked()) && (await toggle.isEnabled()));
    await screenshot(page, "40-webpush-switch-light");
    expect(await page.evaluate(() => window.__serverKeyUsed)).toBe(vapid);

    // The pusher, waiting for its activation; the validation push at the push service.
    const [registered] = await pushers(aliceToken);
    expect(registered).toMatchObject({ kind: "webpush", pushkey: sub.p256dh, data: { url: pushUrl, auth: sub.auth } });
    const [validation] = await waitForPushes(1);
    const ack = decrypt(validation!, ecdh, auth) as { app_id: string; ack_token: string };
    expect(ack.app_id).toBe("org.hearth.web");
    // The worker passes the token to the open tab, which acknowledges it.
    await deliver(context, page, ack);
    await until("the pusher's activation", async () => (await pushers(aliceToken))[0]?.activated === true);

    // Hearth is closed; Bob writes; the push service gets the message, the worker shows it.
    await page.close();
    const blank = await context.newPage();
    await hearth.api("PUT", `/_matrix/client/v3/rooms/${encodeURIComponent(room)}/send/m.room.message/t1`, bobToken, { msgtype: "m.text", body: "hello" });
    const [, message] = await waitForPushes(2);
    const payload = decrypt(message!, ecdh, auth) as Record<string, unknown>;
    expect(payload).toMatchObject({ room_id: room, sender_display_name: "bob", room_name: "general", content: { body: "hello" } });
    await deliver(context, blank, payload);
    // Read in the worker itself: a page of the origin would be a tab on screen.
    const [worker] = context.serviceWorkers();
    expect(worker?.url()).toBe(`${hearth.url}/sw.js`);
    const shown = await until("the notification", () =>
      worker!.evaluate(async () => {
        const reg = (self as unknown as { registration: ServiceWorkerRegistration }).registration;
        const list = await reg.getNotifications();
        return list.length ? list.map((n) => ({ title: n.title, body: n.body, tag: n.tag })) : null;
      }),
    );
    expect(shown).toEqual([{ title: "bob in general", body: "hello", tag: room }]);

    // Switching off removes the pusher.
    const again = await context.newPage();
    await again.goto("/");
    await again.locator(".me").waitFor(WAIT);
    await again.getByRole("button", { name: /Account settings for/ }).click();
    const off = again.getByRole("dialog", { name: "Account" }).getByRole("checkbox", { name: "Notify me when Hearth is closed" });
    expect(await off.isChecked()).toBe(true);
    await off.uncheck();
    await until("the pusher's removal", async () => (await pushers(aliceToken)).length === 0);
    await context.close();
  });
});
