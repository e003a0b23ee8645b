import { isObject, str } from "./types";

/** A Matrix error answer (`errcode` + `error`), or a failure to reach the server. */
export class MatrixError extends Error {
  readonly errcode: string;
  readonly status: number;
  readonly retryAfterMs: number | undefined;
  readonly body: unknown;

  constructor(status: number, body: unknown) {
    const errcode = isObject(body) ? (str(body.errcode) ?? "M_UNKNOWN") : "M_UNKNOWN";
    const message = isObject(body) ? (str(body.error) ?? `HTTP ${status}`) : `HTTP ${status}`;
    super(message);
    this.name = "MatrixError";
    this.errcode = errcode;
    this.status = status;
    this.body = body;
    const retry = isObject(body) ? body.retry_after_ms : undefined;
    this.retryAfterMs = typeof retry === "number" ? retry : undefined;
  }
}

/** The request never got an answer: offline, server down, socket cut. Worth retrying. */
export class NetworkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NetworkError";
  }
}

const FRIENDLY: Record<string, string> = {
  M_USER_IN_USE: "That username is already taken.",
  M_INVALID_USERNAME: "That username is not allowed: use lower-case letters, digits and . _ = - /",
  M_WEAK_PASSWORD: "That password is too weak.",
  M_FORBIDDEN: "Not allowed.",
  M_LIMIT_EXCEEDED: "Too many attempts.",
  M_UNKNOWN_TOKEN: "Your session has ended; please log in again.",
  M_NOT_FOUND: "Not found.",
  M_ROOM_IN_USE: "That address is already in use.",
  M_USER_DEACTIVATED: "This account has been deactivated.",
  M_TOO_LARGE: "That is larger than this server accepts.",
  M_PROFILE_TOO_LARGE: "Your profile would be too large.",
};

/** What to tell a person: our plain words first, then the server's own. */
export function describeError(error: unknown): string {
  if (error instanceof MatrixError) {
    let text = FRIENDLY[error.errcode] ?? "";
    if (error.errcode === "M_LIMIT_EXCEEDED" && error.retryAfterMs !== undefined) {
      text += ` Try again in ${Math.ceil(error.retryAfterMs / 1000)} s.`;
    }
    const server = error.message && error.message !== text ? error.message : "";
    const parts = [text.trim(), server ? `(${error.errcode}: ${server})` : `(${error.errcode})`];
    return parts.filter(Boolean).join(" ");
  }
  if (error instanceof NetworkError) return `Cannot reach the server: ${error.message}`;
  if (error instanceof Error) return error.message;
  return String(error);
}
