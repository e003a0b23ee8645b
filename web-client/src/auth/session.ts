import { deleteStore } from "../crypto/machine";
import type { Session } from "../matrix/client";
import { isObject, str } from "../matrix/types";

const KEY = "hearth.session";

export function loadSession(): Session | null {
  try {
    const value: unknown = JSON.parse(localStorage.getItem(KEY) ?? "null");
    if (!isObject(value)) return null;
    const userId = str(value.userId);
    const accessToken = str(value.accessToken);
    const deviceId = str(value.deviceId);
    return userId && accessToken && deviceId ? { userId, accessToken, deviceId } : null;
  } catch {
    return null;
  }
}

export function saveSession(session: Session): void {
  localStorage.setItem(KEY, JSON.stringify(session));
}

export function clearSession(): void {
  // The device is gone: its encryption keys can never be used again.
  const session = loadSession();
  if (session) deleteStore(session.userId, session.deviceId);
  localStorage.removeItem(KEY);
  // Anything kept for the old account must not leak into the next one's view.
  for (const key of Object.keys(localStorage)) {
    if (key.startsWith("hearth.") && key !== "hearth.theme" && key !== "hearth.transport") {
      localStorage.removeItem(key);
    }
  }
}
