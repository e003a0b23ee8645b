import { useState } from "preact/hooks";
import { useChat } from "../app/context";
import { describeError } from "../matrix/errors";
import { ErrorText } from "../ui/Dialog";
import { notificationsSupported } from "./notifier";
import { disableWebPush, enableWebPush, webPushKey, webPushSupported } from "./webpush";

const DISMISSED_KEY = "hearth.notifications.dismissed";

/**
 * Offers browser notifications once someone has opened a room, rather than on page
 * load, where a permission prompt out of nowhere is usually refused. "Not now" is remembered.
 */
export function NotificationBanner() {
  const [hidden, setHidden] = useState(
    () => !notificationsSupported() || Notification.permission !== "default" || localStorage.getItem(DISMISSED_KEY) === "1",
  );
  if (hidden) return null;
  return (
    <div class="notification-banner" role="region" aria-label="Notifications">
      <span>Get notified of new messages while Hearth is in the background.</span>
      <button
        type="button"
        class="primary"
        onClick={() => {
          void Notification.requestPermission().finally(() => setHidden(true));
        }}
      >
        Enable notifications
      </button>
      <button
        type="button"
        onClick={() => {
          localStorage.setItem(DISMISSED_KEY, "1");
          setHidden(true);
        }}
      >
        Not now
      </button>
    </div>
  );
}

/** The same offer in account settings, for whoever said "Not now" and changed their mind. */
export function NotificationPermission() {
  const [permission, setPermission] = useState(() => (notificationsSupported() ? Notification.permission : null));
  return (
    <section aria-labelledby="account-notifications">
      <h3 id="account-notifications">Notifications</h3>
      {permission === null ? (
        <p class="muted small">This browser cannot show notifications.</p>
      ) : permission === "granted" ? (
        <p class="muted small">
          Notifications are on for this browser. Each room's settings say which of its messages notify.
        </p>
      ) : permission === "denied" ? (
        <p class="muted small">Notifications are blocked for this site; your browser's site settings can allow them.</p>
      ) : (
        <button
          type="button"
          onClick={() => {
            void Notification.requestPermission().then(setPermission, () => undefined);
          }}
        >
          Enable notifications
        </button>
      )}
      {permission !== null && permission !== "denied" ? <WebPushSwitch onPermission={setPermission} /> : null}
    </section>
  );
}

/**
 * "Notify me when Hearth is closed": a Web Push subscription for this browser that the
 * server pushes to itself (see webpush.ts). Off again removes the pusher.
 */
function WebPushSwitch(props: { onPermission: (permission: NotificationPermission) => void }) {
  const chat = useChat();
  const [on, setOn] = useState(() => webPushKey() !== null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  if (!webPushSupported()) return null;
  const toggle = async (want: boolean) => {
    setBusy(true);
    setError(null);
    setOn(want);
    try {
      if (want) await enableWebPush(chat.client);
      else await disableWebPush(chat.client);
    } catch (err) {
      setOn(webPushKey() !== null);
      setError(describeError(err));
    } finally {
      setBusy(false);
      props.onPermission(Notification.permission);
    }
  };
  return (
    <>
      <label class="inline">
        <input type="checkbox" checked={on} disabled={busy} onChange={(e) => void toggle(e.currentTarget.checked)} />
        Notify me when Hearth is closed
      </label>
      <ErrorText error={error} />
    </>
  );
}
