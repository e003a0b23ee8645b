import { MatrixError, NetworkError } from "./errors";
import { enc, request } from "./http";
import { isObject } from "./types";
import type {
  Device,
  JsonObject,
  LoginResponse,
  MessagesResponse,
  PublicRoomsResponse,
  SyncResponse,
} from "./types";

export interface Session {
  userId: string;
  accessToken: string;
  deviceId: string;
}

const V3 = "/_matrix/client/v3";

/** Unique per device: the server deduplicates sends by (device, txn ID). */
export function newTxnId(): string {
  return `hearth-web.${Date.now().toString(36)}.${crypto.getRandomValues(new Uint32Array(2)).join("")}`;
}

/** The client API calls, bound to one session. */
export class MatrixClient {
  /** Called when the server no longer knows our token: signed out elsewhere, or deleted. */
  onUnknownToken: (() => void) | null = null;

  constructor(readonly session: Session) {}

  get userId(): string {
    return this.session.userId;
  }

  private call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const options: { body?: unknown; token: string; signal?: AbortSignal } = {
      token: this.session.accessToken,
    };
    if (body !== undefined) options.body = body;
    if (signal) options.signal = signal;
    return request<T>(method, path, options).catch((error: unknown) => {
      if (error instanceof MatrixError && error.errcode === "M_UNKNOWN_TOKEN") this.onUnknownToken?.();
      throw error;
    });
  }

  sync(since: string | undefined, filter: string, timeoutMs: number, signal: AbortSignal): Promise<SyncResponse> {
    const params = new URLSearchParams({ filter, timeout: String(since ? timeoutMs : 0) });
    if (since) params.set("since", since);
    return this.call("GET", `${V3}/sync?${params}`, undefined, signal);
  }

  /** The key and to-device calls the encryption machine asks for (built in crypto/requests.ts). */
  cryptoCall(method: "POST" | "PUT", path: string, body: unknown): Promise<JsonObject> {
    return this.call(method, path, body);
  }

  /** The server's current key backup; M_NOT_FOUND when there is none. */
  keyBackupVersion(): Promise<JsonObject> {
    return this.call("GET", `${V3}/room_keys/version`);
  }

  createKeyBackupVersion(body: JsonObject): Promise<{ version: string }> {
    return this.call("POST", `${V3}/room_keys/version`, body);
  }

  keyBackupKeys(version: string): Promise<JsonObject> {
    return this.call("GET", `${V3}/room_keys/keys?${new URLSearchParams({ version })}`);
  }

  logout(): Promise<unknown> {
    return this.call("POST", `${V3}/logout`, {});
  }

  send(roomId: string, type: string, txnId: string, content: JsonObject): Promise<{ event_id: string }> {
    return this.call("PUT", `${V3}/rooms/${enc(roomId)}/send/${enc(type)}/${enc(txnId)}`, content);
  }

  redact(roomId: string, eventId: string, reason?: string): Promise<{ event_id: string }> {
    const body = reason ? { reason } : {};
    return this.call("PUT", `${V3}/rooms/${enc(roomId)}/redact/${enc(eventId)}/${enc(newTxnId())}`, body);
  }

  sendState(roomId: string, type: string, stateKey: string, content: JsonObject): Promise<{ event_id: string }> {
    return this.call("PUT", `${V3}/rooms/${enc(roomId)}/state/${enc(type)}/${enc(stateKey)}`, content);
  }

  typing(roomId: string, typing: boolean): Promise<unknown> {
    const body = typing ? { typing: true, timeout: 30000 } : { typing: false };
    return this.call("PUT", `${V3}/rooms/${enc(roomId)}/typing/${enc(this.userId)}`, body);
  }

  readMarkers(roomId: string, eventId: string): Promise<unknown> {
    return this.call("POST", `${V3}/rooms/${enc(roomId)}/read_markers`, {
      "m.fully_read": eventId,
      "m.read": eventId,
    });
  }

  messages(roomId: string, from: string, limit: number): Promise<MessagesResponse> {
    const params = new URLSearchParams({ from, dir: "b", limit: String(limit) });
    return this.call("GET", `${V3}/rooms/${enc(roomId)}/messages?${params}`);
  }

  createRoom(body: JsonObject): Promise<{ room_id: string }> {
    return this.call("POST", `${V3}/createRoom`, body);
  }

  join(roomIdOrAlias: string): Promise<{ room_id: string }> {
    return this.call("POST", `${V3}/join/${enc(roomIdOrAlias)}`, {});
  }

  leave(roomId: string): Promise<unknown> {
    return this.call("POST", `${V3}/rooms/${enc(roomId)}/leave`, {});
  }

  forget(roomId: string): Promise<unknown> {
    return this.call("POST", `${V3}/rooms/${enc(roomId)}/forget`, {});
  }

  invite(roomId: string, userId: string): Promise<unknown> {
    return this.call("POST", `${V3}/rooms/${enc(roomId)}/invite`, { user_id: userId });
  }

  kick(roomId: string, userId: string, reason?: string): Promise<unknown> {
    return this.call("POST", `${V3}/rooms/${enc(roomId)}/kick`, reason ? { user_id: userId, reason } : { user_id: userId });
  }

  ban(roomId: string, userId: string, reason?: string): Promise<unknown> {
    return this.call("POST", `${V3}/rooms/${enc(roomId)}/ban`, reason ? { user_id: userId, reason } : { user_id: userId });
  }

  unban(roomId: string, userId: string): Promise<unknown> {
    return this.call("POST", `${V3}/rooms/${enc(roomId)}/unban`, { user_id: userId });
  }

  publicRooms(search: string, since?: string): Promise<PublicRoomsResponse> {
    const body: JsonObject = { limit: 30 };
    if (search) body.filter = { generic_search_term: search };
    if (since) body.since = since;
    return this.call("POST", `${V3}/publicRooms`, body);
  }

  setAccountData(type: string, content: JsonObject): Promise<unknown> {
    return this.call("PUT", `${V3}/user/${enc(this.userId)}/account_data/${enc(type)}`, content);
  }

  setRoomAccountData(roomId: string, type: string, content: JsonObject): Promise<unknown> {
    return this.call("PUT", `${V3}/user/${enc(this.userId)}/rooms/${enc(roomId)}/account_data/${enc(type)}`, content);
  }

  /** The user's push rules, `{"global": {...}}`: the same shape as `m.push_rules` account data. */
  pushRules(): Promise<JsonObject> {
    return this.call("GET", `${V3}/pushrules/`);
  }

  setPushRule(kind: "override" | "room", ruleId: string, rule: JsonObject): Promise<unknown> {
    return this.call("PUT", `${V3}/pushrules/global/${kind}/${enc(ruleId)}`, rule);
  }

  /** Deleting a rule that is not there is already done. */
  async deletePushRule(kind: "override" | "room", ruleId: string): Promise<void> {
    try {
      await this.call("DELETE", `${V3}/pushrules/global/${kind}/${enc(ruleId)}`);
    } catch (error) {
      if (!(error instanceof MatrixError && error.errcode === "M_NOT_FOUND")) throw error;
    }
  }

  capabilities(): Promise<JsonObject> {
    return this.call("GET", `${V3}/capabilities`);
  }

  /** `POST /pushers/set`; `kind: null` removes the pusher. */
  setPusher(pusher: JsonObject): Promise<unknown> {
    return this.call("POST", `${V3}/pushers/set`, pusher);
  }

  pushers(): Promise<{ pushers: JsonObject[] }> {
    return this.call("GET", `${V3}/pushers`);
  }

  /** Activates a Web Push pusher with the token of its validation push (MSC4174). */
  ackPusher(appId: string, ackToken: string): Promise<unknown> {
    return this.call("POST", `${V3}/pushers/ack`, { app_id: appId, ack_token: ackToken });
  }

  setPresence(presence: "online" | "unavailable" | "offline"): Promise<unknown> {
    return this.call("PUT", `${V3}/presence/${enc(this.userId)}/status`, { presence });
  }

  presence(userId: string): Promise<JsonObject> {
    return this.call("GET", `${V3}/presence/${enc(userId)}/status`);
  }

  searchUsers(term: string): Promise<{ results: { user_id: string; display_name?: string; avatar_url?: string }[]; limited: boolean }> {
    return this.call("POST", `${V3}/user_directory/search`, { search_term: term, limit: 8 });
  }

  devices(): Promise<{ devices: Device[] }> {
    return this.call("GET", `${V3}/devices`);
  }

  deleteDevice(deviceId: string, auth?: JsonObject): Promise<unknown> {
    return this.call("DELETE", `${V3}/devices/${enc(deviceId)}`, auth ? { auth } : {});
  }

  renameDevice(deviceId: string, displayName: string): Promise<unknown> {
    return this.call("PUT", `${V3}/devices/${enc(deviceId)}`, { display_name: displayName });
  }

  changePassword(newPassword: string, logoutDevices: boolean, auth?: JsonObject): Promise<unknown> {
    const body: JsonObject = { new_password: newPassword, logout_devices: logoutDevices };
    if (auth) body.auth = auth;
    return this.call("POST", `${V3}/account/password`, body);
  }

  /** `GET /account/3pid`: the account's verified addresses. */
  threepids(): Promise<JsonObject> {
    return this.call("GET", `${V3}/account/3pid`);
  }

  /** Asks the server to mail a link that verifies `email` for this account; answers the session ID. */
  requestEmailToken(email: string, clientSecret: string, sendAttempt: number): Promise<{ sid: string }> {
    return this.call("POST", `${V3}/account/3pid/email/requestToken`, {
      email,
      client_secret: clientSecret,
      send_attempt: sendAttempt,
    });
  }

  /** Adds the address of a verified session (user-interactive auth: the password). */
  addThreepid(sid: string, clientSecret: string, auth?: JsonObject): Promise<unknown> {
    const body: JsonObject = { sid, client_secret: clientSecret };
    if (auth) body.auth = auth;
    return this.call("POST", `${V3}/account/3pid/add`, body);
  }

  deleteThreepid(address: string): Promise<unknown> {
    return this.call("POST", `${V3}/account/3pid/delete`, { medium: "email", address });
  }

  profile(userId: string): Promise<JsonObject> {
    return this.call("GET", `${V3}/profile/${enc(userId)}`);
  }

  setProfileField(key: string, value: unknown): Promise<unknown> {
    return this.call("PUT", `${V3}/profile/${enc(this.userId)}/${enc(key)}`, { [key]: value });
  }

  deleteProfileField(key: string): Promise<unknown> {
    return this.call("DELETE", `${V3}/profile/${enc(this.userId)}/${enc(key)}`);
  }

  mediaConfig(): Promise<JsonObject> {
    return this.call("GET", "/_matrix/client/v1/media/config");
  }

  /** A media download or thumbnail as a blob; these endpoints want the token in a header. */
  async mediaBlob(path: string, signal?: AbortSignal): Promise<Blob> {
    let response: Response;
    try {
      response = await fetch(path, { headers: { Authorization: `Bearer ${this.session.accessToken}` }, signal: signal ?? null });
    } catch (e) {
      if (e instanceof DOMException && e.name === "AbortError") throw e;
      throw new NetworkError(e instanceof Error ? e.message : String(e));
    }
    if (!response.ok) {
      const body: unknown = await response.json().catch(() => null);
      throw new MatrixError(response.status, body);
    }
    return response.blob();
  }

  /**
   * Uploads a file, reporting progress. XMLHttpRequest because fetch still cannot
   * report upload progress without streaming bodies, which need HTTP/2.
   */
  upload(file: Blob, filename: string, onProgress: (sent: number, total: number) => void): { done: Promise<string>; abort: () => void } {
    const xhr = new XMLHttpRequest();
    const done = new Promise<string>((resolve, reject) => {
      xhr.open("POST", `/_matrix/media/v3/upload?${new URLSearchParams({ filename })}`);
      xhr.setRequestHeader("Authorization", `Bearer ${this.session.accessToken}`);
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
      xhr.onload = () => {
        let body: unknown = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          body = null;
        }
        const uri = isObject(body) ? body.content_uri : undefined;
        if (xhr.status >= 200 && xhr.status < 300 && typeof uri === "string") resolve(uri);
        else {
          const error = new MatrixError(xhr.status, body);
          if (error.errcode === "M_UNKNOWN_TOKEN") this.onUnknownToken?.();
          reject(error);
        }
      };
      xhr.onerror = () => reject(new NetworkError("the upload was cut off"));
      xhr.onabort = () => reject(new DOMException("Upload cancelled", "AbortError"));
      xhr.send(file);
    });
    return { done, abort: () => xhr.abort() };
  }

  /**
   * Runs a request that needs user-interactive auth with the account password: first
   * without auth to get the session, then with the password stage.
   */
  async withPassword<T>(password: string, request: (auth?: JsonObject) => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      if (!(error instanceof MatrixError) || error.status !== 401 || !isObject(error.body) || typeof error.body.session !== "string") {
        throw error;
      }
      return request({
        type: "m.login.password",
        identifier: { type: "m.id.user", user: this.userId },
        password,
        session: error.body.session,
      });
    }
  }
}

export type { LoginResponse };
