// Verifying another of one's own sessions by comparing emoji (SAS, `m.sas.v1`, over
// to-device messages). The protocol is the machine's; this follows one verification at
// a time and says what to show.

import type * as Sdk from "@matrix-org/matrix-sdk-crypto-wasm";

export interface VerificationState {
  otherDevice: string;
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
  ) {}

  /** Asks another of one's sessions to verify this one. */
  async start(deviceId: string): Promise<void> {
    const device = await this.machine.getDevice(new this.sdk.UserId(this.userId), new this.sdk.DeviceId(deviceId), 10);
    if (!device) throw new Error("That session has no encryption keys.");
    const [request, outgoing] = device.requestVerification([this.sdk.VerificationMethod.SasV1]);
    this.follow(request, deviceId, false);
    await this.send(outgoing);
  }

  /** After each sync: another session of ours asking to verify, if nothing else is going on. */
  noticeIncoming(): void {
    if (this.state && this.state.phase !== "done" && this.state.phase !== "cancelled") return;
    for (const request of this.machine.getVerificationRequests(new this.sdk.UserId(this.userId))) {
      if (request.weStarted() || request.isDone() || request.isCancelled() || request === this.request) continue;
      if (this.request && request.flowId === this.request.flowId) continue;
      this.follow(request, request.otherDeviceId?.toString() ?? "another session", true);
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

  private follow(request: Sdk.VerificationRequest, otherDevice: string, incoming: boolean): void {
    this.request = request;
    this.sas = null;
    this.starting = false;
    this.state = { otherDevice, incoming, phase: incoming ? "requested" : "waiting", emojis: [] };
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
    if (request.isCancelled() || this.sas?.isCancelled()) {
      this.set({ phase: "cancelled", reason: request.cancelInfo?.reason() ?? "The other session cancelled." });
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
      this.set({ phase: "done" });
      return;
    }
    const emojis = sas?.emoji();
    if (emojis && this.state.phase !== "confirmed") {
      this.set({ phase: "emoji", emojis: emojis.map((e) => ({ symbol: e.symbol, description: e.description })) });
    }
  }
}
