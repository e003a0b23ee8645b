/**
 * Hearth's service worker (served as /sw.js): shows the Web Push messages the server
 * sends while no Hearth tab is on screen, and opens the room when one is clicked. The
 * validation push of a new pusher goes to the open tabs, which acknowledge it with their
 * session (the worker holds no access token).
 */
import { ackOf, describePush, roomUrl } from "./pushMessage";

// The few service worker types used here (the DOM library has none of them).
interface WindowClientLike {
  visibilityState: DocumentVisibilityState;
  focus(): Promise<unknown>;
  postMessage(message: unknown): void;
}
interface ExtendableEventLike extends Event {
  waitUntil(promise: Promise<unknown>): void;
}
interface PushEventLike extends ExtendableEventLike {
  data: { json(): unknown; text(): string } | null;
}
interface NotificationEventLike extends ExtendableEventLike {
  notification: Notification;
}
interface WorkerScope {
  registration: ServiceWorkerRegistration;
  clients: {
    matchAll(options: { type: "window"; includeUncontrolled: boolean }): Promise<WindowClientLike[]>;
    openWindow(url: string): Promise<unknown>;
    claim(): Promise<void>;
  };
  skipWaiting(): Promise<void>;
  addEventListener(type: "install" | "activate", listener: (event: ExtendableEventLike) => void): void;
  addEventListener(type: "push", listener: (event: PushEventLike) => void): void;
  addEventListener(type: "notificationclick", listener: (event: NotificationEventLike) => void): void;
}

const scope = self as unknown as WorkerScope;

scope.addEventListener("install", (event) => event.waitUntil(scope.skipWaiting()));
scope.addEventListener("activate", (event) => event.waitUntil(scope.clients.claim()));

function windows(): Promise<WindowClientLike[]> {
  return scope.clients.matchAll({ type: "window", includeUncontrolled: true });
}

async function onPush(data: unknown): Promise<void> {
  const open = await windows();
  const ack = ackOf(data);
  if (ack) {
    for (const client of open) client.postMessage({ type: "hearth.pusher_ack", ...ack });
    return;
  }
  const shown = describePush(data);
  if (!shown) return;
  // A tab on screen shows the news itself.
  if (open.some((client) => client.visibilityState === "visible")) return;
  await scope.registration.showNotification(shown.title, {
    body: shown.body,
    tag: shown.tag,
    data: { roomId: shown.roomId },
  });
}

scope.addEventListener("push", (event) => {
  let data: unknown = null;
  try {
    data = event.data?.json() ?? null;
  } catch {
    data = null;
  }
  event.waitUntil(onPush(data));
});

scope.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const roomId = (event.notification.data as { roomId?: unknown } | null)?.roomId;
  if (typeof roomId !== "string") return;
  event.waitUntil(
    (async () => {
      const [client] = await windows();
      if (client) {
        client.postMessage({ type: "hearth.open_room", roomId });
        await client.focus();
      } else {
        await scope.clients.openWindow(roomUrl(scope.registration.scope, roomId));
      }
    })(),
  );
});
