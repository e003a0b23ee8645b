// Cross-signing: the user's master, self-signing and user-signing keys. The machine makes
// and keeps them; this publishes them (with the password step the server asks for), and
// reads who and which devices are verified.

import type * as Sdk from "@matrix-org/matrix-sdk-crypto-wasm";
import type { MatrixClient } from "../matrix/client";
import type { JsonObject } from "../matrix/types";

type Request = Sdk.SignatureUploadRequest | Sdk.KeysUploadRequest;

/**
 * `on`: this session holds the keys; `elsewhere`: the account has an identity whose keys
 * this session does not hold (set up on another session); `none`: no identity yet.
 */
export type CrossSigningState = "on" | "elsewhere" | "none";

export interface DeviceTrust {
  deviceId: string;
  name: string | undefined;
  verified: boolean;
}

export interface UserTrust {
  /** They have published cross-signing keys. */
  hasIdentity: boolean;
  /** Their identity is signed by our user-signing key (or is our own, verified). */
  verified: boolean;
  devices: DeviceTrust[];
}

export class CrossSigning {
  constructor(
    private readonly sdk: typeof Sdk,
    private readonly machine: Sdk.OlmMachine,
    private readonly client: MatrixClient,
    private readonly send: (request: Request) => Promise<void>,
  ) {}

  async state(): Promise<CrossSigningState> {
    const status = await this.machine.crossSigningStatus();
    if (status.hasMaster && status.hasSelfSigning && status.hasUserSigning) return "on";
    const own = await this.machine.getIdentity(new this.sdk.UserId(this.client.userId));
    return own ? "elsewhere" : "none";
  }

  /**
   * Makes new cross-signing keys, publishes them (`/keys/device_signing/upload`, which
   * asks for the password) and signs this device with them.
   */
  async setUp(password: string): Promise<void> {
    const requests = await this.machine.bootstrapCrossSigning(true);
    const keysUpload = requests.uploadKeysRequest as Sdk.KeysUploadRequest | undefined;
    if (keysUpload) await this.send(keysUpload);
    const body = JSON.parse(requests.uploadSigningKeysRequest.body) as JsonObject;
    await this.client.withPassword(password, (auth) =>
      this.client.cryptoCall("POST", "/_matrix/client/v3/keys/device_signing/upload", auth ? { ...body, auth } : body),
    );
    await this.send(requests.uploadSignaturesRequest);
  }

  /** Whether a person, and each of their devices, is verified, as far as this session knows. */
  async trustOf(userId: string): Promise<UserTrust> {
    const user = new this.sdk.UserId(userId);
    const identity = await this.machine.getIdentity(user);
    const devices = await this.machine.getUserDevices(new this.sdk.UserId(userId), 5);
    return {
      hasIdentity: identity !== undefined,
      verified: identity?.isVerified() ?? false,
      devices: devices
        .devices()
        .filter((device) => !device.isDeleted())
        .map((device) => ({ deviceId: device.deviceId.toString(), name: device.displayName, verified: device.isVerified() }))
        .sort((a, b) => a.deviceId.localeCompare(b.deviceId)),
    };
  }

  /** Starts tracking someone's keys (their devices and identity) and fetches them. */
  async track(userId: string): Promise<void> {
    await this.machine.updateTrackedUsers([new this.sdk.UserId(userId)]);
  }
}
