// Starts the real hearth binary serving the built client, and Debian's chromium.
import { spawn, execFileSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import type { Browser, BrowserContext, Page } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const CLIENT_DIR = resolve(here, "../..");
export const SCREENSHOTS = join(CLIENT_DIR, "test-results", "screenshots");
export const PASSWORD = "correct horse battery";

function hearthBinary(): string {
  if (process.env.HEARTH_BIN) return process.env.HEARTH_BIN;
  const target = process.env.CARGO_TARGET_DIR ?? resolve(CLIENT_DIR, "../target");
  return join(resolve(CLIENT_DIR, "..", target), "debug", "hearth");
}

function chromiumPath(): string {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  return execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? res(address.port) : rej(new Error("no port"))));
    });
  });
}

export class Hearth {
  private constructor(
    readonly url: string,
    private readonly child: ChildProcess,
    private readonly dataDir: string,
    readonly log: string[],
  ) {}

  /**
   * `env` sets server options for this run, as HEARTH_<SECTION>__<KEY> variables; a
   * function is given the server's URL first (for options that name it).
   */
  static async start(env: Record<string, string> | ((url: string) => Record<string, string>) = {}): Promise<Hearth> {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const dataDir = mkdtempSync(join(tmpdir(), "hearth-web-"));
    const log: string[] = [];
    const child = spawn(
      hearthBinary(),
      ["--listen", `127.0.0.1:${port}`, "--data", join(dataDir, "data"), "--server-name", `localhost:${port}`],
      {
        env: {
          // HEARTH_BIN and the like are for this harness: hearth would reject them as options.
          ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith("HEARTH_"))),
          RUST_LOG: "warn",
          HEARTH_SYNC_WRITES: "false",
          // Tests register, join and send faster than any person, from one address.
          ...Object.fromEntries(
            ["MESSAGES", "JOINS", "INVITES", "REGISTRATIONS", "SEARCH"].map((family) => [
              `HEARTH_LIMITS__${family}_BURST`,
              "1000000",
            ]),
          ),
          HEARTH_WEB_CLIENT_DIR: join(CLIENT_DIR, "dist"),
          ...(typeof env === "function" ? env(url) : env),
        },
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    child.stderr?.on("data", (chunk: Buffer) => log.push(chunk.toString()));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`hearth exited: ${log.join("")}`);
      try {
        const response = await fetch(`${url}/_matrix/client/versions`);
        if (response.ok) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error("hearth did not start");
      await new Promise((r) => setTimeout(r, 50));
    }
    return new Hearth(url, child, dataDir, log);
  }

  get serverName(): string {
    return new URL(this.url).host.replace("127.0.0.1", "localhost");
  }

  userId(name: string): string {
    return `@${name}:${this.serverName}`;
  }

  async api<T = Record<string, unknown>>(method: string, path: string, token?: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const init: RequestInit = { method, headers };
    if (body !== undefined) init.body = JSON.stringify(body);
    const response = await fetch(`${this.url}${path}`, init);
    const json = (await response.json()) as T;
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
    return json;
  }

  async register(name: string): Promise<string> {
    const body = await this.api<{ access_token: string }>("POST", "/_matrix/client/v3/register", undefined, {
      username: name,
      password: PASSWORD,
      auth: { type: "m.login.dummy" },
    });
    return body.access_token;
  }

  async login(name: string): Promise<string> {
    const body = await this.api<{ access_token: string }>("POST", "/_matrix/client/v3/login", undefined, {
      type: "m.login.password",
      identifier: { type: "m.id.user", user: name },
      password: PASSWORD,
    });
    return body.access_token;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((r) => this.child.once("exit", r));
      this.child.kill("SIGTERM");
      await exited;
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
  });
}

/**
 * `bypassCSP` switches the page's Content-Security-Policy off, so a test can show that the
 * client's own escaping and sanitizing hold without the policy's second line of defence.
 */
export async function newUserPage(
  browser: Browser,
  hearth: Hearth,
  options: { colorScheme?: "light" | "dark"; poll?: boolean; bypassCSP?: boolean } = {},
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({
    viewport: { width: 1200, height: 800 },
    colorScheme: options.colorScheme ?? "light",
    baseURL: hearth.url,
    bypassCSP: options.bypassCSP ?? false,
  });
  if (options.poll) {
    await context.addInitScript(() => localStorage.setItem("hearth.transport", "poll"));
  }
  const page = await context.newPage();
  page.on("dialog", (dialog) => void dialog.accept());
  // Uncaught exceptions and Content-Security-Policy violations fail the run at the end.
  page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`));
  page.on("console", (message) => {
    const text = message.text();
    // Chromium reports the hostile test message's handler attributes while DOMPurify
    // parses it in an inert document; the policy blocks them, which is the point. Any
    // other violation would be ours.
    if (/^Executing inline event handler .* The action has been blocked\.$/s.test(text)) {
      blockedHandlers.count++;
      return;
    }
    if (message.type() === "error" && /Content Security Policy|Refused to/i.test(text)) {
      problems.push(`csp: ${text} (during "${currentTest}")`);
    }
  });
  return { context, page };
}

/** What went wrong inside the pages, whatever the test was looking at. */
export const problems: string[] = [];
export const blockedHandlers = { count: 0 };
export let currentTest = "";
export function setCurrentTest(name: string): void {
  currentTest = name;
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}
