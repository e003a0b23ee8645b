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
