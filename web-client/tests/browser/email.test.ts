// Email in the web client: adding an address by the link in the mail the server sends,
// digests switched off and on, removing the address, and resetting a forgotten password.
// The server sends real mail over SMTP to a real SMTP server in this process
// (`smtp-server`); the links are read out of those mails and followed in the browser, as
// a person would.
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { SMTPServer } from "smtp-server";
import { Hearth, PASSWORD, launchBrowser, newUserPage, problems, screenshot, setCurrentTest } from "./harness";

const WAIT = { timeout: 20_000 };
const VALIDATE_PATH = "/_hearth/client/v1/email/validate";

interface Mail {
  to: string[];
  raw: string;
}

let hearth: Hearth;
let browser: Browser;
let smtp: SMTPServer;
const mails: Mail[] = [];

function decodeQuotedPrintable(text: string): string {
  const bytes: number[] = [];
  const joined = text.replace(/=\r?\n/g, "");
  for (let i = 0; i < joined.length; i++) {
    const hex = joined.slice(i + 1, i + 3);
    if (joined[i] === "=" && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(joined[i]!, "utf8"));
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/** The text/plain part of a MIME message, decoded: enough MIME for the server's mails. */
function plainText(raw: string): string {
  const [head = "", ...rest] = raw.split(/\r?\n\r?\n/);
  const body = rest.join("\r\n\r\n");
  const boundary = /boundary="?([^";\r\n]+)"?/i.exec(head)?.[1];
  const parts = boundary ? body.split(`--${boundary}`).slice(1, -1) : [`${head}\r\n\r\n${body}`];
  for (const part of parts) {
    const split = part.replace(/^\r?\n/, "").search(/\r?\n\r?\n/);
    const trimmed = part.replace(/^\r?\n/, "");
    const headers = trimmed.slice(0, split);
    const content = trimmed.slice(split).replace(/^\r?\n\r?\n/, "");
    if (!/content-type:\s*text\/plain/i.test(headers)) continue;
    const encoding = /content-transfer-encoding:\s*([\w-]+)/i.exec(headers)?.[1]?.toLowerCase() ?? "7bit";
    if (encoding === "quoted-printable") return decodeQuotedPrintable(content);
    if (encoding === "base64") return Buffer.from(content.replace(/\s+/g, ""), "base64").toString("utf8");
    return content;
  }
  throw new Error(`no text/plain part in:\n${raw}`);
}

/** The next mail to `address` after the first `after` mails, and the validation link in it. */
async function linkMailedTo(address: string, after: number): Promise<{ link: string; subject: string }> {
  const mail = await until(`a mail to ${address}`, async () => mails.slice(after).find((m) => m.to.includes(address)));
  const text = plainText(mail.raw);
  const link = new RegExp(`https?://\\S+${VALIDATE_PATH}\\?\\S+`).exec(text)?.[0];
  if (!link) throw new Error(`no link in:\n${text}`);
  const subject = /^Subject: (.*)$/m.exec(mail.raw)?.[1] ?? "";
  return { link, subject };
}

/** Opens the mailed link in a tab of its own and presses the page's button. */
async function followLink(page: Page, link: string): Promise<void> {
  const tab = await page.context().newPage();
  await tab.goto(link);
  await tab.getByRole("button", { name: "Confirm this email address" }).click();
  await tab.getByText("Email address confirmed").waitFor(WAIT);
  await tab.close();
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

async function signIn(page: Page, name: string, password = PASSWORD): Promise<void> {
  await page.goto("/");
  await page.getByLabel("Username").fill(name);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator(".me").waitFor(WAIT);
}

type Pusher = { kind: string; app_id: string; pushkey: string };
async function emailPushers(token: string): Promise<Pusher[]> {
  const answer = await hearth.api<{ pushers: Pusher[] }>("GET", "/_matrix/client/v3/pushers", token);
  return answer.pushers.filter((p) => p.kind === "email");
}

async function addresses(token: string): Promise<string[]> {
  const answer = await hearth.api<{ threepids: { address: string }[] }>("GET", "/_matrix/client/v3/account/3pid", token);
  return answer.threepids.map((t) => t.address);
}

beforeAll(async () => {
  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS"],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        mails.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString("utf8") });
        callback();
      });
    },
  });
  await new Promise<void>((r) => smtp.listen(0, "127.0.0.1", r));
  const smtpPort = (smtp.server.address() as AddressInfo).port;
  hearth = await Hearth.start((url) => ({
    HEARTH_PUBLIC_BASEURL: url,
    HEARTH_EMAIL__SMTP_HOST: "127.0.0.1",
    HEARTH_EMAIL__SMTP_PORT: String(smtpPort),
    HEARTH_EMAIL__SMTP_SECURITY: "none",
    HEARTH_EMAIL__FROM: "Hearth <hearth@example.org>",
  }));
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await hearth?.stop();
  await new Promise<void>((r) => (smtp ? smtp.close(() => r()) : r()));
  expect(problems).toEqual([]);
});

beforeEach((ctx) => setCurrentTest(ctx.task.name));
afterEach(() => setCurrentTest(""));

describe("email addresses", () => {
  it("adds an address by the mailed link, switches its digests off and on, and removes it", async () => {
    const token = await hearth.register("alice");
    const { context, page } = await newUserPage(browser, hearth);
    await signIn(page, "alice");
    await page.getByRole("button", { name: /Account settings for/ }).click();
    const dialog = page.getByRole("dialog", { name: "Account" });
    const section = dialog.locator('section.email-settings[data-changes="true"]');
    await section.waitFor(WAIT);

    const sent = mails.length;
    await section.getByLabel("Add an address").fill("  Alice@Example.org ");
    await section.getByRole("button", { name: "Send link" }).click();
    await section.getByText("We sent a link to alice@example.org").waitFor(WAIT);
    const { link, subject } = await linkMailedTo("alice@example.org", sent);
    expect(subject).toContain("Verify your email address");
    // Closing the dialog to read the mail loses nothing.
    await dialog.getByRole("button", { name: "Close" }).click();
    await page.getByRole("button", { name: /Account settings for/ }).click();
    await section.getByText("We sent a link to alice@example.org").waitFor(WAIT);

    // Continue before the link was followed: the server says not yet, and the client says so.
    await dialog.getByLabel("Current password").fill(PASSWORD);
    await section.getByRole("button", { name: "Continue" }).click();
    await section.getByRole("alert").filter({ hasText: "Not confirmed yet" }).waitFor(WAIT);
    expect(await addresses(token)).toEqual([]);

    await followLink(page, link);
    await section.getByRole("button", { name: "Continue" }).click();
    await section.getByRole("status").filter({ hasText: "Added alice@example.org." }).waitFor(WAIT);
    const row = section.locator('li[data-address="alice@example.org"]');
    const digests = row.getByRole("checkbox", { name: "Digests of missed messages" });
    await until("the digest switch", async () => (await digests.isChecked()) && (await digests.isEnabled()));
    expect(await addresses(token)).toEqual(["alice@example.org"]);
    expect(await emailPushers(token)).toMatchObject([{ app_id: "m.email", pushkey: "alice@example.org" }]);
    await screenshot(page, "50-email-light");

    await digests.uncheck();
    await until("the email pusher's removal", async () => (await emailPushers(token)).length === 0);
    await until("the switch to settle off", async () => !(await digests.isChecked()) && (await digests.isEnabled()));
    await digests.check();
    await until("the email pusher", async () => (await emailPushers(token)).length === 1);
    expect(await emailPushers(token)).toMatchObject([{ kind: "email", app_id: "m.email", pushkey: "alice@example.org" }]);

    // The page answers the confirmation itself (harness: dialogs are accepted).
    await row.getByRole("button", { name: "Remove" }).click();
    await row.waitFor({ state: "detached", ...WAIT });
    expect(await addresses(token)).toEqual([]);
    expect(await emailPushers(token)).toEqual([]);
    await context.close();
  });

  it("resets a forgotten password through the mailed link", async () => {
    // Bob's address, added through the API the same way.
    const token = await hearth.register("bob");
    const secret = "bobsecret";
    const before = mails.length;
    const { sid } = await hearth.api<{ sid: string }>("POST", "/_matrix/client/v3/account/3pid/email/requestToken", token, {
      email: "bob@example.org",
      client_secret: secret,
      send_attempt: 1,
    });
    const { link } = await linkMailedTo("bob@example.org", before);
    const confirm = await fetch(`${hearth.url}${VALIDATE_PATH}`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URL(link).searchParams.toString(),
    });
    expect(confirm.status).toBe(200);
    const session = await fetch(`${hearth.url}/_matrix/client/v3/account/3pid/add`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
      body: JSON.stringify({ sid, client_secret: secret }),
    }).then((r) => r.json() as Promise<{ session: string }>);
    await hearth.api("POST", "/_matrix/client/v3/account/3pid/add", token, {
      sid,
      client_secret: secret,
      auth: { type: "m.login.password", identifier: { type: "m.id.user", user: "bob" }, password: PASSWORD, session: session.session },
    });

    const { context, page } = await newUserPage(browser, hearth, { colorScheme: "dark" });
    await page.goto("/");
    await page.getByRole("button", { name: "Forgot password?" }).click();
    const sent = mails.length;
    await page.getByLabel("Email address").fill("bob@example.org");
    await page.getByRole("button", { name: "Send link" }).click();
    await page.getByText("If bob@example.org belongs to an account here").waitFor(WAIT);
    const reset = await linkMailedTo("bob@example.org", sent);
    expect(reset.subject).toContain("Reset your password");
    // Nor does reloading the page.
    await page.reload();
    await page.getByText("If bob@example.org belongs to an account here").waitFor(WAIT);

    const newPassword = "a brand new password for bob";
    await page.getByLabel("New password", { exact: true }).fill(newPassword);
    await page.getByLabel("Confirm new password").fill(newPassword);
    expect(await page.getByRole("checkbox", { name: "Sign out all my sessions" }).isChecked()).toBe(true);
    await page.getByRole("button", { name: "Set new password" }).click();
    await page.getByRole("alert").filter({ hasText: "Not confirmed yet" }).waitFor(WAIT);
    await screenshot(page, "51-forgot-password-dark");

    await followLink(page, reset.link);
    await page.getByRole("button", { name: "Set new password" }).click();
    await page.getByRole("status").filter({ hasText: "Your password is changed" }).waitFor(WAIT);
    // Bob's other sessions were signed out, as the box said.
    const whoami = await fetch(`${hearth.url}/_matrix/client/v3/account/whoami`, { headers: { Authorization: `Bearer ${token}` } });
    expect(whoami.status).toBe(401);

    await page.getByLabel("Username").fill("bob");
    await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").waitFor(WAIT);
    await page.getByLabel("Password", { exact: true }).fill(newPassword);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator(".me").waitFor(WAIT);
    await context.close();
  });

  it("says so where the server cannot send email", async () => {
    const plain = await Hearth.start();
    try {
      await plain.register("carol");
      const { context, page } = await newUserPage(browser, plain);
      await page.goto("/");
      await screenshot(page, "52-sign-in-light");
      await page.getByRole("button", { name: "Forgot password?" }).click();
      await page.getByLabel("Email address").fill("carol@example.org");
      await page.getByRole("button", { name: "Send link" }).click();
      await page.getByRole("alert").filter({ hasText: "This server cannot send email." }).waitFor(WAIT);
      await page.getByRole("button", { name: "Sign in" }).click();

      await page.getByLabel("Username").fill("carol");
      await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.locator(".me").waitFor(WAIT);
      await page.getByRole("button", { name: /Account settings for/ }).click();
      const section = page.getByRole("dialog", { name: "Account" }).locator('section.email-settings[data-changes="false"]');
      await section.getByText("This server does not let accounts add or remove email addresses.").waitFor(WAIT);
      expect(await section.getByLabel("Add an address").count()).toBe(0);
      await context.close();
    } finally {
      await plain.stop();
    }
  });
});
