// End-to-end encryption: one matrix-sdk-crypto OlmMachine (the WebAssembly build every
// Element uses) per signed-in device, its keys kept in IndexedDB. This file wires it to
// sync and to the server; the cryptography is all the machine's.

import type * as Sdk from "@matrix-org/matrix-sdk-crypto-wasm";
import type { MatrixClient } from "../matrix/client";
import type { JsonObject, MatrixEvent, SyncResponse } from "../matrix/types";
import { str } from "../matrix/types";
import type { Room } from "../sync/room";
import { BACKUP_SECRET, KeyBackup } from "./backup";
import { CrossSigning } from "./crossSigning";
import { ENCRYPTED, markUndecryptable, undecryptableReason, withCleartext } from "./events";
import type { OutgoingShape } from "./requests";
import { httpFor } from "./requests";
import { Verifier } from "./verification";
import { isVerificationEvent, verificationEventJson } from "./inRoomVerification";
import { cryptoParts } from "./syncParts";

type SdkModule = typeof Sdk;
type Outgoing = Awaited<ReturnType<Sdk.OlmMachine["outgoingRequests"]>>[number];

/** The IndexedDB name of one device's keys; the machine adds its own suffixes. */
export function storeName(userId: string, deviceId: string): string {
  return `hearth-crypto:${userId}:${deviceId}`;
}

/** Deletes a device's keys from this browser: after signing out they can never be used again. */
export function deleteStore(userId: string, deviceId: string): void {
  if (typeof indexedDB === "undefined") return;
  const name = storeName(userId, deviceId);
  for (const suffix of ["::matrix-sdk-crypto", "::matrix-sdk-crypto-meta"]) indexedDB.deleteDatabase(name + suffix);
}

/**
 * Holds this device's store for one tab only: two machines on one store would each
 * advance the same Olm sessions and corrupt them. Waits a little for a tab being closed
 * or reloaded to let go; the release function, or an error saying why not.
 */
async function holdStore(name: string): Promise<() => void> {
  if (typeof navigator === "undefined" || !navigator.locks) return () => undefined;
  const held = new Promise<() => void>((resolve, reject) => {
    navigator.locks
      .request(name, { signal: AbortSignal.timeout(10_000) }, () => new Promise<void>((release) => resolve(release)))
      .catch(() => reject(new Error("Hearth is open with this account in another tab of this browser; encryption works in one tab at a time.")));
  });
  return held;
}

/** Events of one sync's timelines lose any local mark a server put on them. */
export function stripMarks(sync: SyncResponse): void {
  const rooms = sync.rooms ?? {};
  for (const update of [...Object.values(rooms.join ?? {}), ...Object.values(rooms.leave ?? {})]) {
    for (const event of update.timeline?.events ?? []) delete event.e2ee;
  }
}

/** What history visibility the room key is shared for, as the machine names it. */
function historyVisibility(sdk: SdkModule, room: Room): Sdk.HistoryVisibility {
  switch (str(room.stateEvent("m.room.history_visibility")?.content.history_visibility)) {
    case "invited":
      return sdk.HistoryVisibility.Invited;
    case "joined":
      return sdk.HistoryVisibility.Joined;
    case "world_readable":
      return sdk.HistoryVisibility.WorldReadable;
    default:
      return sdk.HistoryVisibility.Shared;
  }
}

export class Crypto {
  private outgoing: Promise<void> | null = null;
  private again = false;
  private readonly roomLocks = new Map<string, Promise<unknown>>();
  private closed = false;
  private release: () => void = () => undefined;
  /** Key backup with a recovery key. */
  readonly backup: KeyBackup;
  /** Emoji verification of one's other sessions and of other people; `changed` is set by whoever shows it. */
  readonly verifier: Verifier;
  /** Cross-signing keys, and who is verified. */
  readonly crossSigning: CrossSigning;
  onVerificationChange: () => void = () => undefined;
  /** Goes up whenever someone's devices or identity change: what was shown as verified may differ. */
  trustEpoch = 0;

  private constructor(
    private readonly sdk: SdkModule,
    private readonly machine: Sdk.OlmMachine,
    private readonly client: MatrixClient,
    onRoomKeys: (keys: { roomId: string; sessionId: string }[]) => void,
  ) {
    this.backup = new KeyBackup(sdk, machine, client, onRoomKeys);
    this.verifier = new Verifier(
      sdk,
      machine,
      client.userId,
      (request) => this.send(request),
      () => this.onVerificationChange(),
      (roomId, type, content) => this.sendToRoom(roomId, type, content),
      () => this.processOutgoing(),
    );
    this.crossSigning = new CrossSigning(sdk, machine, client, (request) => this.send(request));
  }

  /**
   * Loads the WebAssembly module and opens this device's machine. Throws when the
   * browser cannot (no WebAssembly, no IndexedDB, a policy that blocks either).
   */
  static async start(client: MatrixClient, onRoomKeys: (keys: { roomId: string; sessionId: string }[]) => void): Promise<Crypto> {
    const sdk = await import("@matrix-org/matrix-sdk-crypto-wasm");
    await sdk.initAsync();
    const { userId, deviceId } = client.session;
    const release = await holdStore(storeName(userId, deviceId));
    let machine: Sdk.OlmMachine;
    try {
      machine = await sdk.OlmMachine.initialize(new sdk.UserId(userId), new sdk.DeviceId(deviceId), storeName(userId, deviceId));
    } catch (error) {
      release();
      throw error;
    }
    const crypto = new Crypto(sdk, machine, client, onRoomKeys);
    crypto.release = release;
    machine.registerRoomKeyUpdatedCallback(async (infos) => {
      onRoomKeys(infos.map((info) => ({ roomId: info.roomId.toString(), sessionId: info.sessionId })));
    });
    const trustChanged = async () => {
      crypto.trustEpoch++;
      crypto.onVerificationChange();
    };
    machine.registerUserIdentityUpdatedCallback(trustChanged);
    machine.registerDevicesUpdatedCallback(trustChanged);
    // Secrets another of our verified sessions sends after a verification (the machine
    // takes the cross-signing keys itself); ones that came while no tab ran wait in the inbox.
    machine.registerReceiveSecretCallback(async (name, value) => {
      void crypto.takeSecret(name, value);
    });
    for (const value of await machine.getSecretsFromInbox(BACKUP_SECRET)) await crypto.takeSecret(BACKUP_SECRET, value);
    // Uploads this device's identity and one-time keys the first time.
    await crypto.processOutgoing();
    await crypto.backup.resume().catch((error: unknown) => console.warn("hearth: key backup did not resume", error));
    return crypto;
  }

  /** The backup key from another session: read the backup with it, and keep backing up. */
  private async takeSecret(name: string, value: string): Promise<void> {
    if (name !== BACKUP_SECRET || this.closed) return;
    try {
      if (await this.backup.restoreWithSecret(value)) await this.machine.deleteSecretsFromInbox(name);
    } catch (error) {
      console.warn("hearth: the key backup's key from another session did not work", error);
    }
    this.trustEpoch++;
    this.onVerificationChange();
  }

  close(): void {
    this.closed = true;
    this.machine.close();
    this.release();
  }

  private userIds(ids: string[]): Sdk.UserId[] {
    const out: Sdk.UserId[] = [];
    for (const id of ids) {
      try {
        out.push(new this.sdk.UserId(id));
      } catch {
        // Not a user ID: nothing to track.
      }
    }
    return out;
  }

  /**
   * Feeds one sync to the machine (to-device messages, device list changes, key counts),
   * then decrypts that sync's encrypted timeline events in place, before the store sees
   * them. Keys that came in this same sync are used.
   */
  async onSync(sync: SyncResponse): Promise<void> {
    stripMarks(sync);
    const parts = cryptoParts(sync);
    const lists = new this.sdk.DeviceLists(this.userIds(parts.changed), this.userIds(parts.left));
    const processed = await this.machine.receiveSyncChanges(
      JSON.stringify(parts.toDevice),
      lists,
      parts.oneTimeKeyCounts,
      parts.unusedFallbackKeys ?? undefined,
    );
    // Cross-signing keys from another session are taken by the machine without a callback:
    // what shows whether cross-signing is set up here must look again.
    if (processed.some((event) => this.isSecret(event))) {
      this.trustEpoch++;
      this.onVerificationChange();
    }
    const rooms = sync.rooms ?? {};
    for (const [roomId, update] of [...Object.entries(rooms.join ?? {}), ...Object.entries(rooms.leave ?? {})]) {
      const events = update.timeline?.events;
      if (events) await this.decryptAll(roomId, events);
    }
    // Verifications with other people run as room events (in the clear or decrypted above).
    // A request is offered only after the whole sync: later events may have answered it.
    const requests: MatrixEvent[] = [];
    for (const [roomId, update] of Object.entries(rooms.join ?? {})) {
      for (const event of update.timeline?.events ?? []) {
        if (!isVerificationEvent(event)) continue;
        try {
          // Their devices and identity are needed to check the emoji's keys: fetched below.
          if (event.sender !== this.client.userId) await this.machine.updateTrackedUsers(this.userIds([event.sender]));
          await this.machine.receiveVerificationEvent(verificationEventJson(roomId, event), new this.sdk.RoomId(roomId));
          requests.push(event);
        } catch (error) {
          console.warn("hearth: a verification event was not understood", error);
        }
      }
    }
    for (const event of requests) this.verifier.noticeRoomRequest(event);
    if (parts.toDevice.length) this.verifier.noticeIncoming();
    void this.processOutgoing();
  }

  private isSecret(event: Sdk.ProcessedToDeviceEvent): boolean {
    if (event.type !== this.sdk.ProcessedToDeviceEventType.Decrypted) return false;
    try {
      return (JSON.parse(event.rawEvent) as { type?: unknown }).type === "m.secret.send";
    } catch {
      return false;
    }
  }

  /** Replaces each encrypted event in the list by what it says, or marks why it cannot. */
  async decryptAll(roomId: string, events: MatrixEvent[]): Promise<void> {
    for (let i = 0; i < events.length; i++) {
      const event = events[i];
      if (event?.type === ENCRYPTED && !event.unsigned?.redacted_because) events[i] = await this.decrypt(roomId, event);
    }
  }

  /** The event as its sender wrote it, or the same event marked undecryptable. */
  async decrypt(roomId: string, event: MatrixEvent): Promise<MatrixEvent> {
    const envelope: MatrixEvent = { ...event };
    delete envelope.e2ee;
    try {
      const settings = new this.sdk.DecryptionSettings(this.sdk.TrustRequirement.Untrusted);
      const decrypted = await this.machine.decryptRoomEvent(JSON.stringify({ ...envelope, room_id: roomId }), new this.sdk.RoomId(roomId), settings);
      const clear = withCleartext(envelope, decrypted.event);
      if (clear) return clear;
      markUndecryptable(envelope, "The decrypted message is not a Matrix event.");
    } catch (error) {
      const reason =
        error instanceof this.sdk.MegolmDecryptionError
          ? undecryptableReason(error.code, error.withheldCode)
          : undecryptableReason(undefined, undefined);
      markUndecryptable(envelope, reason);
    }
    return envelope;
  }

  /**
   * Encrypts one event for a room: makes sure the machine knows every member's devices
   * and has an Olm session with each, shares the room key with them, then encrypts.
   * One room at a time, so two messages never race to share two keys.
   */
  encrypt(room: Room, type: string, content: JsonObject): Promise<JsonObject> {
    const previous = this.roomLocks.get(room.roomId) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => this.encryptNow(room, type, content));
    this.roomLocks.set(room.roomId, next);
    return next;
  }

  private async encryptNow(room: Room, type: string, content: JsonObject): Promise<JsonObject> {
    const sdk = this.sdk;
    const visibility = historyVisibility(sdk, room);
    // Invited people get the key too unless only joined members may read (as Element does).
    const members = [...room.members("join"), ...(visibility === sdk.HistoryVisibility.Joined ? [] : room.members("invite"))];
    // The machine takes ownership of the IDs it is given: each call gets its own.
    const users = () => this.userIds(members);
    await this.machine.updateTrackedUsers(users());
    await this.processOutgoing();
    const claim = await this.machine.getMissingSessions(users());
    if (claim) await this.send(claim);
    const settings = new sdk.EncryptionSettings();
    settings.historyVisibility = visibility;
    settings.sharingStrategy = sdk.CollectStrategy.allDevices();
    const encryption = room.stateEvent("m.room.encryption")?.content ?? {};
    const periodMs = encryption.rotation_period_ms;
    if (typeof periodMs === "number" && Number.isSafeInteger(periodMs) && periodMs > 0) settings.rotationPeriod = BigInt(periodMs) * 1000n;
    const periodMsgs = encryption.rotation_period_msgs;
    if (typeof periodMsgs === "number" && Number.isSafeInteger(periodMsgs) && periodMsgs > 0) settings.rotationPeriodMessages = BigInt(periodMsgs);
    const roomId = new sdk.RoomId(room.roomId);
    for (const request of await this.machine.shareRoomKey(roomId, users(), settings)) await this.send(request);
    return JSON.parse(await this.machine.encryptRoomEvent(roomId, type, JSON.stringify(content))) as JsonObject;
  }

  /**
   * Runs what the machine wants sent (key uploads and queries, one-time key claims,
   * to-device messages), one round at a time; a call during a round asks for another
   * round and resolves when that one ends. Failures are left for the next round.
   */
  processOutgoing(): Promise<void> {
    if (this.outgoing) {
      this.again = true;
      return this.outgoing;
    }
    this.outgoing = (async () => {
      try {
        do {
          this.again = false;
          if (this.closed) return;
          for (const request of await this.machine.outgoingRequests()) {
            try {
              await this.send(request);
            } catch (error) {
              console.warn("hearth: an encryption request failed", error);
            }
          }
          // New room keys into the key backup, if there is one, a batch at a time.
          try {
            for (let batch = 0; batch < 20 && !this.closed; batch++) {
              const request = await this.machine.backupRoomKeys();
              if (!request) break;
              await this.send(request);
            }
          } catch (error) {
            console.warn("hearth: backing up room keys failed", error);
          }
        } while (this.again);
      } finally {
        this.outgoing = null;
      }
    })();
    return this.outgoing;
  }

  /** Sends one room event as it is (verification events go in the clear, as Element sends them). */
  private async sendToRoom(roomId: string, type: string, content: unknown): Promise<string> {
    const txnId = `hv${Date.now()}.${Math.random().toString(36).slice(2)}`;
    const path = `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/${encodeURIComponent(type)}/${encodeURIComponent(txnId)}`;
    const response = await this.client.cryptoCall("PUT", path, content);
    const eventId = str(response.event_id);
    if (!eventId) throw new Error("The server did not say which event it stored.");
    return eventId;
  }

  private async send(
    request: Outgoing | Sdk.KeysClaimRequest | Sdk.ToDeviceRequest | Sdk.KeysBackupRequest | Sdk.RoomMessageRequest | Sdk.SignatureUploadRequest,
  ): Promise<void> {
    const shape = request as unknown as OutgoingShape & { id?: string };
    const call = httpFor(shape);
    if (!call) return;
    const response = await this.client.cryptoCall(call.method, call.path, call.body);
    if (shape.id && !this.closed) await this.machine.markRequestAsSent(shape.id, shape.type as Sdk.RequestType, JSON.stringify(response));
  }
}
