// Email addresses, their verification and digests, and the forgotten-password flow: the
// pieces that decide things, kept apart from the dialogs so they can be tested alone.

import { MatrixError, describeError } from "../matrix/errors";
import type { JsonObject } from "../matrix/types";
import { isObject, str } from "../matrix/types";

/** The app ID of the pushers that send digests of missed messages by email (as Synapse). */
export const EMAIL_APP_ID = "m.email";

// 64 characters, so each random byte picks one evenly (its low six bits).
const SECRET_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-";

/**
 * A fresh `client_secret` for one verification: 32 characters (192 random bits) of
 * `[0-9a-zA-Z_-]`, which the spec's `[0-9a-zA-Z.=_-]{1,255}` allows. The secret proves the
 * session is ours.
 */
export function newClientSecret(): string {
  let secret = "";
  for (const byte of crypto.getRandomValues(new Uint8Array(32))) secret += SECRET_ALPHABET[byte & 63];
  return secret;
}

/** An address as the server keeps it: trimmed and lower-cased. */
export function normalizeAddress(address: string): string {
  return address.trim().toLowerCase();
}

/**
 * Enough of a check to catch a slip (no @, a space) before a mail is sent; the server has
 * the last word, and may well accept `someone@localhost`.
 */
export function looksLikeAddress(address: string): boolean {
  return /^[^\s@]+@[^\s@]+$/.test(normalizeAddress(address));
}

/**
 * Whether the server lets users add and remove addresses: `m.3pid_changes` in
 * `/capabilities`, enabled unless it says otherwise (the spec's default).
 */
export function threepidChangesEnabled(capabilities: JsonObject): boolean {
  const caps = isObject(capabilities.capabilities) ? capabilities.capabilities : {};
  const changes = caps["m.3pid_changes"];
  return !(isObject(changes) && changes.enabled === false);
}

export interface EmailAddress {
  address: string;
  validatedAt: number | null;
}

/** The email addresses in a `GET /account/3pid` answer, sorted; anything else is skipped. */
export function emailAddresses(answer: unknown): EmailAddress[] {
  if (!isObject(answer) || !Array.isArray(answer.threepids)) return [];
  const found: EmailAddress[] = [];
  for (const entry of answer.threepids) {
    if (!isObject(entry) || entry.medium !== "email") continue;
    const address = str(entry.address);
    if (!address) continue;
    found.push({ address, validatedAt: typeof entry.validated_at === "number" ? entry.validated_at : null });
  }
  return found.sort((a, b) => a.address.localeCompare(b.address));
}

/** The addresses among `pushers` (a `GET /pushers` answer's list) that get digests. */
export function digestAddresses(pushers: unknown[]): Set<string> {
  const on = new Set<string>();
  for (const pusher of pushers) {
    if (!isObject(pusher) || pusher.kind !== "email" || pusher.app_id !== EMAIL_APP_ID) continue;
    const pushkey = str(pusher.pushkey);
    if (pushkey) on.add(normalizeAddress(pushkey));
  }
  return on;
}

/** The `/pushers/set` body that turns digests to `address` on or off. */
export function digestPusher(address: string, on: boolean): JsonObject {
  if (!on) return { kind: null, app_id: EMAIL_APP_ID, pushkey: address };
  return {
    kind: "email",
    app_id: EMAIL_APP_ID,
    pushkey: address,
    app_display_name: "Email Notifications",
    device_display_name: address,
    lang: "en",
    data: {},
    // Other accounts' digests to the same address (if any) are theirs to keep.
    append: true,
  };
}

/**
 * What to tell the person when an email step fails, for the errors these flows have
 * words of their own for; any other error as `describeError` words it.
 */
export function describeEmailError(error: unknown): string {
  if (error instanceof MatrixError) {
    const server = error.message ? ` (${error.errcode}: ${error.message})` : ` (${error.errcode})`;
    switch (error.errcode) {
      case "M_THREEPID_AUTH_FAILED":
        return `Not confirmed yet: open the link in the mail first, press its button, then try again.${server}`;
      case "M_THREEPID_IN_USE":
        return `That address belongs to another account.${server}`;
      case "M_THREEPID_DENIED":
        return `This server cannot send email.${server}`;
      case "M_THREEPID_NOT_FOUND":
        return `No account has that address.${server}`;
    }
  }
  return describeError(error);
}

/**
 * The `auth` of a forgotten-password `POST /account/password`: the validated email
 * session stands in for the password.
 */
export function emailIdentityAuth(sid: string, clientSecret: string, session?: string): JsonObject {
  const auth: JsonObject = { type: "m.login.email.identity", threepid_creds: { sid, client_secret: clientSecret } };
  if (session) auth.session = session;
  return auth;
}

/** A verification under way: the server mailed a link for `address`. */
export interface PendingEmail {
  address: string;
  sid: string;
  clientSecret: string;
  sendAttempt: number;
}

/**
 * Remembers a verification under way in this tab (`sessionStorage`), so that closing the
 * dialog or reloading the page while reading the mail does not lose it; null forgets it.
 */
export function savePendingEmail(key: string, pending: PendingEmail | null): void {
  try {
    if (pending) sessionStorage.setItem(key, JSON.stringify(pending));
    else sessionStorage.removeItem(key);
  } catch {
    // Storage refused (private mode, quota): the flow still works while the page stays.
  }
}

/** The verification `savePendingEmail` kept under `key`, if what is there is one. */
export function loadPendingEmail(key: string): PendingEmail | null {
  let value: unknown;
  try {
    value = JSON.parse(sessionStorage.getItem(key) ?? "null");
  } catch {
    return null;
  }
  if (!isObject(value)) return null;
  const { address, sid, clientSecret, sendAttempt } = value;
  if (typeof address !== "string" || typeof sid !== "string" || typeof clientSecret !== "string") return null;
  if (typeof sendAttempt !== "number" || !Number.isInteger(sendAttempt) || sendAttempt < 1) return null;
  return { address, sid, clientSecret, sendAttempt };
}
