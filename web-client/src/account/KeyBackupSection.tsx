import { useEffect, useRef, useState } from "preact/hooks";
import { useChat } from "../app/context";
import { currentBackup } from "../crypto/backup";
import { describeError } from "../matrix/errors";
import { ErrorText } from "../ui/Dialog";

/**
 * Key backup: set one up (the recovery key is shown once), or, on a new device, get the
 * keys of earlier messages back with the recovery key.
 */
export function KeyBackupSection() {
  const chat = useChat();
  const [state, setState] = useState<"loading" | "none" | "on" | "elsewhere" | "unavailable">("loading");
  const [recoveryKey, setRecoveryKey] = useState<string | null>(null);
  const [typed, setTyped] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  // Answers can come back out of order: only the latest question's counts.
  const asked = useRef(0);
  const refresh = async () => {
    const question = ++asked.current;
    const crypto = await chat.crypto();
    let answer: typeof state;
    if (!crypto) answer = "unavailable";
    else if (await crypto.backup.version()) answer = "on";
    else answer = (await currentBackup(chat.client)) ? "elsewhere" : "none";
    if (question === asked.current) setState(answer);
  };
  // Asked again as keys change: another session may send this one the backup's key.
  const epoch = chat.cryptoNow?.trustEpoch;
  useEffect(() => {
    refresh().catch((e: unknown) => setError(describeError(e)));
  }, [epoch]);

  const act = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    setStatus(null);
    try {
      await action();
      await refresh();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  const create = () =>
    act(async () => {
      const crypto = await chat.crypto();
      if (!crypto) return;
      setRecoveryKey(await crypto.backup.create());
      void crypto.processOutgoing();
    });

  const restore = (e: Event) => {
    e.preventDefault();
    void act(async () => {
      const crypto = await chat.crypto();
      if (!crypto) return;
      const count = await crypto.backup.restore(typed);
      setTyped("");
      setStatus(`Restored ${count} ${count === 1 ? "key" : "keys"}.`);
    });
  };

  return (
    <section aria-labelledby="account-backup">
      <h3 id="account-backup">Key backup</h3>
      {state === "unavailable" ? <p class="small">Encryption could not start in this browser.</p> : null}
      {state === "on" ? <p class="small">The keys of your encrypted messages are backed up on the server, encrypted with your recovery key.</p> : null}
      {state === "none" ? (
        <p class="small">
          Without a backup, signing out of every device loses the keys to your encrypted messages.{" "}
          <button type="button" disabled={busy} onClick={() => void create()}>
            Set up key backup
          </button>
        </p>
      ) : null}
      {recoveryKey ? (
        <div class="recovery-key-box" role="status">
          <p class="small">Your recovery key. Keep it somewhere safe: it is shown only now, and it is the only way to read your backup.</p>
          <code class="recovery-key">{recoveryKey}</code>
        </div>
      ) : null}
      {state === "elsewhere" || state === "on" ? (
        <form class="form" onSubmit={restore}>
          <label>
            Recovery key <span class="muted small">(to read earlier messages on this device)</span>
            <input name="recovery-key" autoComplete="off" spellcheck={false} value={typed} onInput={(e) => setTyped(e.currentTarget.value)} />
          </label>
          <div class="actions">
            <button type="submit" disabled={busy || !typed.trim()}>
              Restore keys
            </button>
          </div>
        </form>
      ) : null}
      <ErrorText error={error} />
      {status ? <p role="status">{status}</p> : null}
    </section>
  );
}
