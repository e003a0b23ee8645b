// Verifying by comparing emoji (SAS, `m.sas.v1`): another of one's own sessions over
// to-device messages, or another person in a room shared with them (their master key then
// gets signed with one's user-signing key). The protocol is the machine's; this follows
// one verification at a time and says what to show.

import type * as Sdk from "@matrix-org/matrix-sdk-crypto-wasm";
import type { MatrixEvent } from "../matrix/types";
import { isRequestFor } from "./inRoomVerification";

export interface VerificationState {
  /** One's own other session (`other` is its device ID), or another person (their user ID). */
  kind: "session" | "person";
  other: string;
  /** The other session asked. */
  incoming: boolean;
  phase: "requested" | "waiting" | "emoji" | "confirmed" | "done" | "cancelled";
  emojis: { symbol: string; description: string }[];
  reason?: string;
}

type Outgoing = NonNullable<ReturnType<Sdk.VerificationRequest["accept"]>>;

export class Verifier {
  state: VerificationState | null = null;
  private request: Sdk.VerificationRequest | null = null;
  private sas: Sdk.Sas | null = null;
  private starting = false;

  constructor(
    private readonly sdk: typeof Sdk,
    private readonly machine: Sdk.OlmMachine,
    private readonly userId: string,
    private readonly send: (request: Outgoing) => Promise<void>,
    private readonly changed: () => void,
    /** Sends a room message in the clear; its event ID. */
    private readonly sendToRoom: (roomId: string, type: string, content: unknown) => Promise<string>,
    /** Runs the machine's outgoing requests (a keys query, say). */
    private readonly flush: () => Promise<void>,
  ) {}

  private busy(): boolean {
    return this.state !== null && this.state.phase !== "done" && this.state.phase !== "cancelled";
  }

  /** Asks another of one's sessions to verify this one. */
  async start(deviceId: string): Promise<void> {
    const device = await this.machine.getDevice(new this.sdk.UserId(this.userId), new this.sdk.DeviceId(deviceId), 10);
    if (!device) throw new Error("That session has no encryption keys.");
    const [request, outgoing] = device.requestVerification([this.sdk.VerificationMethod.SasV1]);
    this.follow(request, "session", deviceId, false);
    await this.send(outgoing);
  }

  /**
   * Asks another person to verify, in a room shared with them (a direct chat). Needs
   * one's own cross-signing keys (to sign theirs after) and their published identity.
   */
  async startWithUser(userId: string, roomId: string): Promise<void> {
    if (this.busy()) throw new Error("Another verification is going on.");
    const status = await this.machine.crossSigningStatus();
    if (!status.hasUserSigning) throw new Error("Set up cross-signing first (Account settings → Cross-signing).");
    const sdk = this.sdk;
    await this.machine.updateTrackedUsers([new sdk.UserId(userId)]);
    await this.flush();
    const identity = await this.machine.getIdentity(new sdk.UserId(userId));
    if (!(identity instanceof sdk.OtherUserIdentity)) throw new Error(`${userId} has not set up cross-signing, so they cannot be verified yet.`);
    const methods = [sdk.VerificationMethod.SasV1];
    const content: unknown = JSON.parse(identity.verificationRequestContent(methods));
    const eventId = await this.sendToRoom(roomId, "m.room.message", content);
    const request = identity.requestVerification(new sdk.RoomId(roomId), new sdk.EventId(eventId), methods);
    this.follow(request, "person", userId, false);
    await this.update();
  }

  /** After the machine has read a room's verification event: a request for us from someone else. */
  noticeRoomRequest(event: MatrixEvent): void {
    if (this.busy() || !isRequestFor(event, this.userId)) return;
    const request = this.machine.getVerificationRequest(new this.sdk.UserId(event.sender), event.event_id);
    // Only one still waiting for an answer (not answered, cancelled or timed out since).
    if (!request || request.weStarted() || request.phase() !== this.sdk.VerificationRequestPhase.Requested || request.timedOut()) return;
    this.follow(request, "person", event.sender, true);
  }

  /** After each sync: another session of ours asking to verify, if nothing else is going on. */
  noticeIncoming(): void {
    if (this.busy()) return;
    for (const request of this.machine.getVerificationRequests(new this.sdk.UserId(this.userId))) {
      if (request.weStarted() || request.isDone() || request.isCancelled() || request === this.request) continue;
      if (this.request && request.flowId === this.request.flowId) continue;
      this.follow(request, "session", request.otherDeviceId?.toString() ?? "another session", true);
      return;
    }
  }

  async accept(): Promise<void> {
    const outgoing = this.request?.acceptWithMethods([this.sdk.VerificationMethod.SasV1]);
    if (outgoing) await this.send(outgoing);
    this.set({ phase: "waiting" });
  }

  /** The emoji are the same on both screens. */
  async confirm(): Promise<void> {
    if (!this.sas) return;
    this.set({ phase: "confirmed" });
    for (const outgoing of await this.sas.confirm()) await this.send(outgoing);
    await this.update();
  }

  /** They differ, or the person gave up. */
  async cancel(): Promise<void> {
    const outgoing = this.sas?.cancel() ?? this.request?.cancel();
    this.dismiss();
    if (outgoing) await this.send(outgoing);
  }

  dismiss(): void {
    this.state = null;
    this.changed();
  }

  private follow(request: Sdk.VerificationRequest, kind: VerificationState["kind"], other: string, incoming: boolean): void {
    this.request = request;
    this.sas = null;
    this.starting = false;
    this.state = { kind, other, incoming, phase: incoming ? "requested" : "waiting", emojis: [] };
    request.registerChangesCallback(() => this.update());
    this.changed();
  }

  private set(change: Partial<VerificationState>): void {
    if (!this.state) return;
    this.state = { ...this.state, ...change };
    this.changed();
  }

  private async update(): Promise<void> {
    const request = this.request;
    if (!request || !this.state) return;
    if (request.isPassive() && !this.sas) {
      this.set({ phase: "cancelled", reason: "It was answered on another of your sessions." });
      return;
    }
    if (request.timedOut() && !this.sas) {
      this.set({ phase: "cancelled", reason: "The request timed out." });
      return;
    }
    if (request.isCancelled() || this.sas?.isCancelled()) {
      this.set({ phase: "cancelled", reason: request.cancelInfo?.reason() ?? "The other side cancelled." });
      return;
    }
    if (!this.sas) {
      const verification = request.getVerification();
      if (verification instanceof this.sdk.Sas) {
        this.sas = verification;
        verification.registerChangesCallback(() => this.update());
        // The other session started it: agree to go on.
        if (!verification.weStarted()) {
          const outgoing = verification.accept();
          if (outgoing) await this.send(outgoing);
        }
      } else if (request.isReady() && request.weStarted() && !this.starting) {
        this.starting = true;
        const started = await request.startSas();
        if (started) {
          const [sas, outgoing] = started;
          this.sas = sas;
          sas.registerChangesCallback(() => this.update());
          await this.send(outgoing);
        }
      }
    }
    const sas = this.sas;
    if (sas?.isDone()) {
      // Signing their key (or our new session) may be waiting among the machine's requests.
      // A session of ours that now trusts another asks it for the secrets it lacks (the
      // cross-signing keys, the key backup's key); the other answers as it trusts this one.
      if (this.state.phase !== "done") {
        if (this.state.kind === "session") await this.machine.requestMissingSecretsIfNeeded();
        await this.flush();
      }
      this.set({ phase: "done" });
      return;
    }
    const emojis = sas?.emoji();
    if (emojis && this.state.phase !== "confirmed") {
      this.set({ phase: "emoji", emojis: emojis.map((e) => ({ symbol: e.symbol, description: e.description })) });
    }
  }
}
