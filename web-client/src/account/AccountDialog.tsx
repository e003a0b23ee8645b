import { useEffect, useState } from "preact/hooks";
import { useChat } from "../app/context";
import { describeError } from "../matrix/errors";
import type { Device } from "../matrix/types";
import { NotificationPermission } from "../notify/NotificationPermission";
import { Dialog, ErrorText } from "../ui/Dialog";
import { CrossSigningSection } from "./CrossSigningSection";
import { EmailSection } from "./EmailSection";
import { KeyBackupSection } from "./KeyBackupSection";
import { useTrust } from "./trust";

function lastSeen(device: Device): string {
  if (!device.last_seen_ts) return "never seen";
  const when = new Date(device.last_seen_ts).toLocaleString();
  return device.last_seen_ip ? `last seen ${when} from ${device.last_seen_ip}` : `last seen ${when}`;
}

/** The account: where it is signed in, signing other sessions out, and the password. */
export function AccountDialog(props: { onClose: () => void }) {
  const chat = useChat();
  const me = chat.client.session;
  const [devices, setDevices] = useState<Device[] | null>(null);
  const [password, setPassword] = useState("");
  const [newPassword, setNewPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [signOutOthers, setSignOutOthers] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const trust = useTrust(me.userId);
  const sessionTrust = new Map(trust?.devices.map((device) => [device.deviceId, device.verified]));

  const load = () =>
    chat.client
      .devices()
      .then((answer) => setDevices(answer.devices.sort((a, b) => (b.last_seen_ts ?? 0) - (a.last_seen_ts ?? 0))))
      .catch((e: unknown) => setError(describeError(e)));
  useEffect(() => void load(), []);

  const act = async (done: string, action: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    setStatus(null);
    try {
      await action();
      setStatus(done);
      await load();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog title="Account" onClose={props.onClose} wide>
      <p class="muted">
        Signed in as <strong>{me.userId}</strong> on this device ({me.deviceId}).
      </p>
      <label>
        Current password <span class="muted small">(needed to sign other sessions out, change it, add an email address or set up cross-signing)</span>
        <input type="password" autoComplete="current-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
      </label>
      <ErrorText error={error} />
      {status ? <p role="status">{status}</p> : null}
      <section aria-labelledby="account-sessions">
        <h3 id="account-sessions">Sessions</h3>
        {devices === null ? (
          <p class="muted">Loading…</p>
        ) : (
          <ul class="member-list">
            {devices.map((device) => (
              <li key={device.device_id} data-device-id={device.device_id}>
                <span class="member-name">
                  {device.display_name || device.device_id}
                  {device.device_id === me.deviceId ? <strong> (this device)</strong> : null}
                  <br />
                  <span class="muted small">
                    {device.device_id} · {lastSeen(device)}
                    {sessionTrust.has(device.device_id) ? (
                      <span class="session-trust" data-verified={String(sessionTrust.get(device.device_id))}>
                        {" "}
                        · {sessionTrust.get(device.device_id) ? "verified" : "not verified"}
                      </span>
                    ) : null}
                  </span>
                </span>
                {device.device_id === me.deviceId || !chat.verifier ? null : (
                  <button
                    type="button"
                    disabled={busy}
                    onClick={() => {
                      const verifier = chat.verifier;
                      setError(null);
                      verifier?.start(device.device_id).then(props.onClose, (e: unknown) => setError(describeError(e)));
                    }}
                  >
                    Verify
                  </button>
                )}
                {device.device_id === me.deviceId ? null : (
                  <button
                    type="button"
                    disabled={busy || !password}
                    title={password ? undefined : "Enter your password first"}
                    onClick={() =>
                      void act(`Signed out ${device.display_name || device.device_id}.`, () =>
                        chat.client.withPassword(password, (auth) => chat.client.deleteDevice(device.device_id, auth)),
                      )
                    }
                  >
                    Sign out
                  </button>
                )}
              </li>
            ))}
          </ul>
        )}
      </section>
      <section aria-labelledby="account-password">
        <h3 id="account-password">Change password</h3>
        <form
          class="form"
          onSubmit={(e) => {
            e.preventDefault();
            if (newPassword !== confirm) {
              setError("The two new passwords differ.");
              return;
            }
            void act("Password changed.", async () => {
              await chat.client.withPassword(password, (auth) => chat.client.changePassword(newPassword, signOutOthers, auth));
              setPassword("");
              setNewPassword("");
              setConfirm("");
            });
          }}
        >
          <label>
            New password
            <input type="password" autoComplete="new-password" required value={newPassword} onInput={(e) => setNewPassword(e.currentTarget.value)} />
          </label>
          <label>
            Confirm new password
            <input type="password" autoComplete="new-password" required value={confirm} onInput={(e) => setConfirm(e.currentTarget.value)} />
          </label>
          <label class="inline">
            <input type="checkbox" checked={signOutOthers} onChange={(e) => setSignOutOthers(e.currentTarget.checked)} /> Sign out all other
            sessions
          </label>
          <div class="actions">
            <button type="submit" class="primary" disabled={busy || !password}>
              Change password
            </button>
          </div>
        </form>
      </section>
      <EmailSection password={password} />
      <CrossSigningSection password={password} />
      <KeyBackupSection />
      <NotificationPermission />
    </Dialog>
  );
}
