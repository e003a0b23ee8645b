/**
 * "Notify me when Hearth is closed": a Web Push subscription of this browser, registered
 * with the server as an MSC4174 `webpush` pusher, so that the server itself pushes to the
 * browser's push service and the service worker (`sw.ts`, served as /sw.js) shows the
 * message with no Hearth tab open. The server first sends a validation push; the worker
 * passes its token to the open tabs, and one acknowledges it with `/pushers/ack`.
 */
import type { MatrixClient } from "../matrix/client";
import { isObject } from "../matrix/types";

export const APP_ID = "org.hearth.web";
const ENABLED_KEY = "hearth.webpush.pushkey";
const WORKER_URL = "/sw.js";

/** Whether this browser can have a push subscription here at all. */
export function webPushSupported(): boolean {
  return typeof navigator !== "undefined" && "serviceWorker" in navigator && typeof PushManager !== "undefined" && window.isSecureContext;
}

/** The pushkey this browser registered for the session, if push is on. */
export function webPushKey(): string | null {
  return localStorage.getItem(ENABLED_KEY);
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  const raw = atob(b64);
  const bytes = new Uint8Array(new ArrayBuffer(raw.length));
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

function toBase64Url(buffer: ArrayBuffer | null): string {
  if (!buffer) return "";
  let raw = "";
  for (const byte of new Uint8Array(buffer)) raw += String.fromCharCode(byte);
  return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** The server's VAPID key from `/capabilities`, or null if it has no Web Push pushers. */
export async function vapidKey(client: MatrixClient): Promise<string | null> {
  const answer = await client.capabilities();
  const caps = isObject(answer.capabilities) ? answer.capabilities : {};
  for (const name of ["m.webpush", "org.matrix.msc4174.webpush"]) {
    const cap = caps[name];
    if (isObject(cap) && cap.enabled === true && typeof cap.vapid === "string" && cap.vapid) return cap.vapid;
  }
  return null;
}

async function registration(): Promise<ServiceWorkerRegistration> {
  await navigator.serviceWorker.register(WORKER_URL, { scope: "/" });
  return navigator.serviceWorker.ready;
}

/** Subscribes this browser and registers the pusher; asks for permission first. */
export async function enableWebPush(client: MatrixClient): Promise<void> {
  const vapid = await vapidKey(client);
  if (!vapid) throw new Error("This server cannot send Web Push messages.");
  if ((await Notification.requestPermission()) !== "granted") {
    throw new Error("Notifications are not allowed for this site.");
  }
  const reg = await registration();
  const key = fromBase64Url(vapid);
  let subscription = await reg.pushManager.getSubscription();
  const sameKey = subscription?.options.applicationServerKey
    ? toBase64Url(subscription.options.applicationServerKey) === vapid
    : false;
  if (subscription && !sameKey) {
    await subscription.unsubscribe();
    subscription = null;
  }
  subscription ??= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  const json = subscription.toJSON();
  const pushkey = json.keys?.p256dh;
  const auth = json.keys?.auth;
  if (!json.endpoint || !pushkey || !auth) throw new Error("The browser gave an incomplete push subscription.");
  await client.setPusher({
    kind: "webpush",
    app_id: APP_ID,
    pushkey,
    app_display_name: "Hearth",
    device_display_name: navigator.userAgent.slice(0, 100),
    lang: navigator.language || "en",
    data: { url: json.endpoint, auth },
  });
  localStorage.setItem(ENABLED_KEY, pushkey);
}

/** Removes the pusher and the browser's subscription (best effort for the latter). */
export async function disableWebPush(client: MatrixClient): Promise<void> {
  const pushkey = webPushKey();
  localStorage.removeItem(ENABLED_KEY);
  if (pushkey) await client.setPusher({ kind: null, app_id: APP_ID, pushkey });
  if (!webPushSupported()) return;
  const reg = await navigator.serviceWorker.getRegistration("/");
  const subscription = await reg?.pushManager.getSubscription();
  await subscription?.unsubscribe().catch(() => undefined);
}

/** On sign-out: the server drops the device's pushers itself; the subscription goes too. */
export async function forgetWebPush(): Promise<void> {
  localStorage.removeItem(ENABLED_KEY);
  if (!webPushSupported()) return;
  const reg = await navigator.serviceWorker.getRegistration("/");
  const subscription = await reg?.pushManager.getSubscription();
  await subscription?.unsubscribe().catch(() => undefined);
}

/**
 * On opening the app with push on: registers again if the server lost the pusher or it
 * never got activated (its validation push came while no tab was open to acknowledge it).
 */
export async function refreshWebPush(client: MatrixClient): Promise<void> {
  const pushkey = webPushKey();
  if (!pushkey || !webPushSupported() || Notification.permission !== "granted") return;
  const { pushers } = await client.pushers();
  const mine = pushers.find((p) => p.app_id === APP_ID && p.pushkey === pushkey);
  if (!mine || mine.activated === false) await enableWebPush(client);
}

/**
 * While a session is open: acknowledges the validation pushes the worker passes on, and
 * opens the room of a clicked notification. Returns the function that stops listening.
 */
export function listenToWorker(client: MatrixClient, openRoom: (roomId: string) => void): () => void {
  if (!webPushSupported()) return () => undefined;
  const onMessage = (event: MessageEvent) => {
    const data: unknown = event.data;
    if (!isObject(data)) return;
    if (data.type === "hearth.pusher_ack" && data.app_id === APP_ID && typeof data.ack_token === "string") {
      void client.ackPusher(APP_ID, data.ack_token).catch(() => undefined);
    } else if (data.type === "hearth.open_room" && typeof data.roomId === "string") {
      openRoom(data.roomId);
    }
  };
  navigator.serviceWorker.addEventListener("message", onMessage);
  void refreshWebPush(client).catch(() => undefined);
  return () => navigator.serviceWorker.removeEventListener("message", onMessage);
}
