import { useState } from "preact/hooks";
import { notificationsSupported } from "./notifier";

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
    </section>
  );
}
