import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MatrixClient } from "../../src/matrix/client";
import { SyncEngine } from "../../src/sync/engine";
import { ClientStore } from "../../src/sync/store";

/** The browser's WebSocket, as far as the engine uses it; frames are driven by the test. */
class FakeSocket {
  static readonly OPEN = 1;
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: string[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((message: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number }) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(text: string): void {
    this.sent.push(text);
  }
  close(): void {
    this.readyState = 3;
  }
  open(): void {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.();
  }
  receive(frame: unknown): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  closedByServer(code: number): void {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  frame(index: number): Record<string, unknown> {
    return JSON.parse(this.sent[index]!) as Record<string, unknown>;
  }
}

const TOKEN = "syt_secret_token";
const USER = "@alice:example.org";
let fetched: string[] = [];

beforeEach(() => {
  FakeSocket.all = [];
  fetched = [];
  vi.stubGlobal("WebSocket", FakeSocket);
  vi.stubGlobal("fetch", (url: string) => {
    fetched.push(url);
    return Promise.resolve(new Response("{}", { status: 200, headers: { "content-type": "application/json" } }));
  });
});

afterEach(() => {
  vi.unstubAllGlobals();
});

function started(onSessionEnded = () => {}): { engine: SyncEngine; socket: FakeSocket } {
  const client = new MatrixClient({ userId: USER, accessToken: TOKEN, deviceId: "DEV" });
  const engine = new SyncEngine(client, new ClientStore(USER), onSessionEnded);
  engine.start();
  const socket = FakeSocket.all.at(-1)!;
  return { engine, socket };
}

describe("the sync socket", () => {
  it("carries no token in its URL and sends it as its first frame", async () => {
    const { engine, socket } = started();
    expect(socket.url).toContain("/_matrix/client/unstable/org.hearth.sync/ws?");
    expect(socket.url).not.toContain(TOKEN);
    expect(socket.url).not.toMatch(/access_token/i);
    socket.open();
    expect(socket.frame(0)).toEqual({ type: "auth", request_id: "auth", access_token: TOKEN });

    // Until the server has taken the token nothing else goes over the socket.
    await engine.typing("!room:example.org", true);
    expect(socket.sent).toHaveLength(1);
    expect(fetched.some((url) => url.includes("/typing/"))).toBe(true);

    socket.receive({ type: "response", request_id: "auth", body: { user_id: USER, device_id: "DEV" } });
    const typing = engine.typing("!room:example.org", false);
    expect(socket.sent).toHaveLength(2);
    const request = socket.frame(1);
    expect(request.type).toBe("typing");
    socket.receive({ type: "response", request_id: request.request_id, body: {} });
    await typing;
    engine.stop();
  });

  it("ends the session when the server refuses the token", () => {
    let ended = 0;
    const { engine, socket } = started(() => ended++);
    socket.open();
    socket.receive({ type: "error", request_id: "auth", errcode: "M_UNKNOWN_TOKEN", error: "Unknown access token" });
    socket.closedByServer(1008);
    expect(ended).toBe(1);
    engine.stop();
  });
});
