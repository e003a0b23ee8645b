// Server-side key backup (`m.megolm_backup.v1.curve25519-aes-sha2`) with a recovery key:
// room keys are encrypted to the backup's public key by the machine and stored on the
// server; the recovery key (the private key) brings them back on a new device.

import type * as Sdk from "@matrix-org/matrix-sdk-crypto-wasm";
import type { MatrixClient } from "../matrix/client";
import { MatrixError } from "../matrix/errors";
import type { JsonObject } from "../matrix/types";
import { isObject, str } from "../matrix/types";
import { decodeRecoveryKey, encodeRecoveryKey, fromBase64, toBase64 } from "./recoveryKey";

export const BACKUP_ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2";
/** The secret name under which sessions share the backup's private key (base64). */
export const BACKUP_SECRET = "m.megolm_backup.v1";

export interface BackupInfo {
  version: string;
  publicKey: string;
}

/** The server's current backup, if it is one this client can use. */
export async function currentBackup(client: MatrixClient): Promise<BackupInfo | null> {
  let info: JsonObject;
  try {
    info = await client.keyBackupVersion();
  } catch (error) {
    if (error instanceof MatrixError && error.errcode === "M_NOT_FOUND") return null;
    throw error;
  }
  const version = str(info.version);
  const publicKey = isObject(info.auth_data) ? str(info.auth_data.public_key) : undefined;
  if (info.algorithm !== BACKUP_ALGORITHM || !version || !publicKey) return null;
  return { version, publicKey };
}

export class KeyBackup {
  constructor(
    private readonly sdk: typeof Sdk,
    private readonly machine: Sdk.OlmMachine,
    private readonly client: MatrixClient,
    private readonly onRoomKeys: (keys: { roomId: string; sessionId: string }[]) => void,
  ) {}

  /** The backup this device uploads to, if any. */
  async version(): Promise<string | null> {
    if (!(await this.machine.isBackupEnabled())) return null;
    return (await this.machine.getBackupKeys()).backupVersion ?? null;
  }

  /** After start: keeps backing up to the server's backup if this device holds its key. */
  async resume(): Promise<void> {
    const saved = await this.machine.getBackupKeys();
    const key = saved.decryptionKey;
    if (!key || !saved.backupVersion) return;
    const server = await currentBackup(this.client);
    if (server && server.version === saved.backupVersion && server.publicKey === key.megolmV1PublicKey.publicKeyBase64) {
      await this.machine.enableBackupV1(server.publicKey, server.version);
    }
  }

  /** Makes a new backup on the server, starts filling it; the recovery key, to show once. */
  async create(): Promise<string> {
    const key = this.sdk.BackupDecryptionKey.createRandomKey();
    const publicKey = key.megolmV1PublicKey.publicKeyBase64;
    // Signed by this device, so other devices of this user can trust the backup.
    const signatures = await this.machine.sign(JSON.stringify({ public_key: publicKey }));
    const authData = { public_key: publicKey, signatures: JSON.parse(signatures.asJSON()) as unknown };
    const { version } = await this.client.createKeyBackupVersion({ algorithm: BACKUP_ALGORITHM, auth_data: authData });
    await this.use(key, { version, publicKey });
    return encodeRecoveryKey(fromBase64(key.toBase64()));
  }

  /** Reads every key in the server's backup with the recovery key; how many were imported. */
  async restore(recoveryKey: string): Promise<number> {
    return this.restoreWith(this.sdk.BackupDecryptionKey.fromBase64(toBase64(decodeRecoveryKey(recoveryKey))));
  }

  /**
   * The same with the key another of one's verified sessions sent (the `m.megolm_backup.v1`
   * secret); false if it is not the server's backup's key.
   */
  async restoreWithSecret(base64Key: string): Promise<boolean> {
    const key = this.sdk.BackupDecryptionKey.fromBase64(base64Key);
    const backup = await currentBackup(this.client);
    if (!backup || backup.publicKey !== key.megolmV1PublicKey.publicKeyBase64) return false;
    await this.restoreWith(key);
    return true;
  }

  private async restoreWith(key: Sdk.BackupDecryptionKey): Promise<number> {
    const backup = await currentBackup(this.client);
    if (!backup) throw new Error("There is no key backup on the server.");
    if (backup.publicKey !== key.megolmV1PublicKey.publicKeyBase64) throw new Error("That recovery key is not for the server's backup.");
    const answer = await this.client.keyBackupKeys(backup.version);
    const byRoom = new Map<Sdk.RoomId, Map<string, unknown>>();
    const found: { roomId: string; sessionId: string }[] = [];
    const rooms = isObject(answer.rooms) ? answer.rooms : {};
    for (const [roomId, room] of Object.entries(rooms)) {
      if (!isObject(room) || !isObject(room.sessions)) continue;
      const sessions = new Map<string, unknown>();
      for (const [sessionId, session] of Object.entries(room.sessions)) {
        const data = isObject(session) && isObject(session.session_data) ? session.session_data : null;
        const ephemeral = str(data?.ephemeral);
        const mac = str(data?.mac);
        const ciphertext = str(data?.ciphertext);
        if (!ephemeral || !mac || !ciphertext) continue;
        try {
          sessions.set(sessionId, JSON.parse(key.decryptV1(ephemeral, mac, ciphertext)));
          found.push({ roomId, sessionId });
        } catch {
          // One damaged entry must not stop the others.
        }
      }
      try {
        if (sessions.size) byRoom.set(new this.sdk.RoomId(roomId), sessions);
      } catch {
        // Not a room ID.
      }
    }
    const result = await this.machine.importBackedUpRoomKeys(byRoom, () => undefined, backup.version);
    await this.use(key, backup);
    this.onRoomKeys(found);
    return result.importedCount;
  }

  private async use(key: Sdk.BackupDecryptionKey, backup: BackupInfo): Promise<void> {
    await this.machine.saveBackupDecryptionKey(key, backup.version);
    await this.machine.enableBackupV1(backup.publicKey, backup.version);
  }
}
