// Another person's encrypting client, run in Node with the same matrix-sdk-crypto build
// the web client uses (its Node entry point, keys in memory). The test drives it step by
// step, so it can do what the web client never would: hold back a room key, or encrypt
// hostile HTML.
import * as sdk from "@matrix-org/matrix-sdk-crypto-wasm";
import { httpFor } from "../../src/crypto/requests";
import type { OutgoingShape } from "../../src/crypto/requests";
import type { Hearth } from "./harness";

type Json = Record<string, unknown>;

export class CryptoPeer {
  private since: string | undefined;
  private txn = 0;

  private constructor(
    private readonly hearth: Hearth,
    readonly userId: string,
    readonly token: string,
    private readonly machine: sdk.OlmMachine,
  ) {}

  /** Registers `name` and uploads a new device's keys. */
  static async register(hearth: Hearth, name: string): Promise<CryptoPeer> {
    await sdk.initAsync();
    const token = await hearth.register(name);
    const whoami = await hearth.api<{ user_id: string; device_id: string }>("GET", "/_matrix/client/v3/account/whoami", token);
    const machine = await sdk.OlmMachine.initialize(new sdk.UserId(whoami.user_id), new sdk.DeviceId(whoami.device_id));
    const peer = new CryptoPeer(hearth, whoami.user_id, token, machine);
    await peer.sync();
    return peer;
  }

  /** Sends one outgoing request of the machine and tells it the answer. */
  async send(request: { type: number; body: string; id?: string | undefined }): Promise<void> {
    const call = httpFor(request as OutgoingShape);
    if (!call) throw new Error(`the peer cannot send request type ${request.type}`);
    const response = await this.hearth.api(call.method, call.path, this.token, call.body);
    if (request.id) await this.machine.markRequestAsSent(request.id, request.type as sdk.RequestType, JSON.stringify(response));
  }

  private async flush(): Promise<void> {
    for (const request of await this.machine.outgoingRequests()) await this.send(request);
  }

  /** One sync round, fed to the machine; then whatever it wants sent. */
  async sync(timeoutMs = 0): Promise<Json> {
    const params = new URLSearchParams({ timeout: String(timeoutMs) });
    if (this.since) params.set("since", this.since);
    const sync = await this.hearth.api<Json>("GET", `/_matrix/client/v3/sync?${params}`, this.token);
    this.since = String(sync.next_batch);
    const toDevice = (sync.to_device as { events?: unknown[] } | undefined)?.events ?? [];
    const lists = (sync.device_lists ?? {}) as { changed?: string[]; left?: string[] };
    const counts = new Map(Object.entries((sync.device_one_time_keys_count ?? {}) as Record<string, number>));
    await this.machine.receiveSyncChanges(
      JSON.stringify(toDevice),
      new sdk.DeviceLists((lists.changed ?? []).map((u) => new sdk.UserId(u)), (lists.left ?? []).map((u) => new sdk.UserId(u))),
      counts,
      new Set((sync.device_unused_fallback_key_types ?? []) as string[]),
    );
    await this.flush();
    return sync;
  }

  /**
   * Gets a room key ready for `users` and returns the to-device messages that would hand
   * it to them, unsent: the caller sends them now, later, or never.
   */
  async prepareRoomKey(roomId: string, users: string[]): Promise<sdk.ToDeviceRequest[]> {
    // The machine takes ownership of the IDs it is given: each call gets its own.
    const ids = () => users.map((u) => new sdk.UserId(u));
    await this.machine.updateTrackedUsers(ids());
    await this.flush();
    const claim = await this.machine.getMissingSessions(ids());
    if (claim) await this.send(claim);
    const settings = new sdk.EncryptionSettings();
    settings.sharingStrategy = sdk.CollectStrategy.allDevices();
    return this.machine.shareRoomKey(new sdk.RoomId(roomId), ids(), settings);
  }

  /** Encrypts with the room's current key and sends; the event's ID. */
  async sendEncrypted(roomId: string, content: Json): Promise<string> {
    const encrypted = await this.machine.encryptRoomEvent(new sdk.RoomId(roomId), "m.room.message", JSON.stringify(content));
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.encrypted/peer-${++this.txn}`;
    const { event_id } = await this.hearth.api<{ event_id: string }>("PUT", path, this.token, JSON.parse(encrypted));
    return event_id;
  }

  /** Starts a new room key: the next `prepareRoomKey` shares a key nobody has yet. */
  async rotateRoomKey(roomId: string): Promise<void> {
    await this.machine.invalidateGroupSession(new sdk.RoomId(roomId));
  }

  /** The body of the last message `sender` sent in `roomId` in this sync, decrypted; "" if none. */
  async readTimeline(sync: Json, roomId: string, sender: string): Promise<string> {
    const rooms = (sync.rooms ?? {}) as { join?: Record<string, { timeline?: { events?: Json[] } }> };
    const events = rooms.join?.[roomId]?.timeline?.events ?? [];
    let body = "";
    for (const event of events) {
      if (event.type !== "m.room.encrypted" || event.sender !== sender) continue;
      const settings = new sdk.DecryptionSettings(sdk.TrustRequirement.Untrusted);
      const decrypted = await this.machine.decryptRoomEvent(JSON.stringify({ ...event, room_id: roomId }), new sdk.RoomId(roomId), settings);
      const clear = JSON.parse(decrypted.event) as { content?: { body?: unknown } };
      if (typeof clear.content?.body === "string") body = clear.content.body;
    }
    return body;
  }

  close(): void {
    this.machine.close();
  }
}
