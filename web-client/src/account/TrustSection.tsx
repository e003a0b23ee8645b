import { useState } from "preact/hooks";
import { useChat } from "../app/context";
import { describeError } from "../matrix/errors";
import { ErrorText } from "../ui/Dialog";
import { directChatWith, useTrust } from "./trust";

/** Whether a person and each of their devices is verified; verifying them by emoji in a direct chat. */
export function TrustSection(props: { userId: string }) {
  const chat = useChat();
  const trust = useTrust(props.userId);
  const [error, setError] = useState<string | null>(null);
  if (!chat.cryptoNow) return null;
  const self = props.userId === chat.userId;
  const verify = () => {
    const room = directChatWith(chat.store, props.userId);
    if (!room) {
      setError("Start a direct chat with them first: the verification runs there.");
      return;
    }
    setError(null);
    chat.verifier?.startWithUser(props.userId, room.roomId).then(
      () => chat.showProfile(null),
      (e: unknown) => setError(describeError(e)),
    );
  };
  const label = !trust ? "Checking…" : trust.verified ? "Verified" : trust.hasIdentity ? "Not verified" : "No cross-signing keys published";
  return (
    <section class="trust" aria-labelledby="trust-heading">
      <h4 id="trust-heading">Encryption</h4>
      <p class="trust-status" data-verified={trust ? String(trust.verified) : undefined}>
        {label}
      </p>
      {trust && trust.devices.length ? (
        <ul class="trust-devices" aria-label="Their sessions">
          {trust.devices.map((device) => (
            <li key={device.deviceId} data-device-id={device.deviceId} data-verified={String(device.verified)}>
              {device.name ? `${device.name} (${device.deviceId})` : device.deviceId}
              <span class="muted small"> · {device.verified ? "verified" : "not verified"}</span>
            </li>
          ))}
        </ul>
      ) : null}
      {!self && trust?.hasIdentity && !trust.verified ? (
        <div class="actions">
          <button type="button" class="primary" onClick={verify}>
            Verify by emoji
          </button>
        </div>
      ) : null}
      <ErrorText error={error} />
    </section>
  );
}
