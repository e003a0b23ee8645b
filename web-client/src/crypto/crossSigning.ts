// Cross-signing: the user's master, self-signing and user-signing keys. The machine makes
// and keeps them; this publishes them (with the password step the server asks for), and
// reads who and which devices are verified.

import type * as Sdk from "@matrix-org/matrix-sdk-crypto-wasm";
import type { MatrixClient } from "../matrix/client";
import type { JsonObject } from "../matrix/types";
import { isObject } from "../matrix/types";

type Request = Sdk.SignatureUploadRequest | Sdk.KeysUploadRequest;

/**
 * `on`: this session holds the keys the server publishes; `elsewhere`: the server
 * publishes keys this session does not hold (made on another session, or reset there);
 * `none`: the server publishes none.
 */
export type CrossSigningState = "on" | "elsewhere" | "none";

/** The public master key in a cross-signing key object (`{ keys: { "ed25519:…": key } }`). */
export function masterKeyOf(key: unknown): string | undefined {
  if (!isObject(key) || !isObject(key.keys)) return undefined;
  const value = Object.values(key.keys)[0];
  return typeof value === "string" ? value : undefined;
}

/** The user's master key as a `/keys/query` answer publishes it. */
export function publishedMasterKey(answer: unknown, userId: string): string | undefined {
  if (!isObject(answer) || !isObject(answer.master_keys)) return undefined;
  return masterKeyOf(answer.master_keys[userId]);
}

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

  /**
   * Asks the server, not only the machine: keys made here whose upload failed (a wrong
   * password) are not set up, and keys replaced from another session are no longer ours.
   */
  async state(): Promise<CrossSigningState> {
    const me = this.client.userId;
    const published = publishedMasterKey(await this.client.cryptoCall("POST", "/_matrix/client/v3/keys/query", { device_keys: { [me]: [] } }), me);
    if (!published) return "none";
    const status = await this.machine.crossSigningStatus();
    const own = await this.machine.getIdentity(new this.sdk.UserId(me));
    let local: string | undefined;
    try {
      local = own ? masterKeyOf(JSON.parse(own.masterKey)) : undefined;
    } catch {
      local = undefined;
    }
    return status.hasMaster && status.hasSelfSigning && status.hasUserSigning && local === published ? "on" : "elsewhere";
  }

  /**
   * Makes new cross-signing keys, publishes them (`/keys/device_signing/upload`; the
   * server asks for the password when it would replace published keys) and signs this
   * device with them.
   */
  async setUp(password: string): Promise<void> {
    const requests = await this.machine.bootstrapCrossSigning(true);
    const keysUpload = requests.uploadKeysRequest as Sdk.KeysUploadRequest | undefined;
    if (keysUpload) await this.send(keysUpload);
    const body = JSON.parse(requests.uploadSigningKeysRequest.body) as JsonObject;
    await this.client.withPassword(password, (auth) => {
      if (auth && !password) throw new Error("The server asks for your password: enter it above, then try again.");
      return this.client.cryptoCall("POST", "/_matrix/client/v3/keys/device_signing/upload", auth ? { ...body, auth } : body);
    });
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
