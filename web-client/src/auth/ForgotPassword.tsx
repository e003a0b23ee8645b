import { useState } from "preact/hooks";
import type { PendingEmail } from "../account/email";
import { describeEmailError, loadPendingEmail, looksLikeAddress, newClientSecret, normalizeAddress, savePendingEmail } from "../account/email";
import { ErrorText } from "../ui/Dialog";
import { requestPasswordResetToken, resetPassword } from "./account";

// Kept if the page is reloaded while the mail is read.
const PENDING_KEY = "hearth.email.pending-reset";

/** Whether a reset was under way in this tab (the sign-in page then opens on it). */
export function resetUnderWay(): boolean {
  return loadPendingEmail(PENDING_KEY) !== null;
}

/**
 * A forgotten password: the server mails a link to the account's address; once it is
 * followed, a new password is set here. Servers that cannot send email say so
 * (`M_THREEPID_DENIED`) on the first step.
 */
export function ForgotPassword(props: { onDone: () => void; onCancel: () => void }) {
  const [address, setAddress] = useState("");
  const [sent, setSentState] = useState<PendingEmail | null>(() => loadPendingEmail(PENDING_KEY));
  const setSent = (next: PendingEmail | null) => {
    savePendingEmail(PENDING_KEY, next);
    setSentState(next);
  };
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [signOutAll, setSignOutAll] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const run = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    setStatus(null);
    try {
      await action();
    } catch (err) {
      setError(describeEmailError(err));
    } finally {
      setBusy(false);
    }
  };

  const send = (to: string, clientSecret: string, sendAttempt: number) =>
    run(async () => {
      const { sid } = await requestPasswordResetToken(to, clientSecret, sendAttempt);
      setSent({ address: to, sid, clientSecret, sendAttempt });
      if (sendAttempt > 1) setStatus("Sent again.");
    });

  const submit = (e: Event) => {
    e.preventDefault();
    if (!sent) {
      const to = normalizeAddress(address);
      if (!looksLikeAddress(to)) {
        setError("That does not look like an email address.");
        return;
      }
      void send(to, newClientSecret(), 1);
      return;
    }
    if (password !== confirm) {
      setError("The two passwords differ.");
      return;
    }
    void run(async () => {
      await resetPassword(password, signOutAll, sent.sid, sent.clientSecret);
      setSent(null);
      props.onDone();
    });
  };

  return (
    <form class="auth-card forgot-password" onSubmit={submit} aria-labelledby="auth-title" data-step={sent ? "sent" : "ask"}>
      <div class="brand">
        <img src="/favicon.svg" alt="" width={40} height={40} />
        <span>Hearth</span>
      </div>
      <h1 id="auth-title">Reset your password</h1>
      <p class="muted">on {location.host}</p>
      {sent ? (
        <>
          <p class="notice">
            If <strong>{sent.address}</strong> belongs to an account here, we sent a link to it. Open the link and confirm, then set a new
            password here.
          </p>
          <label>
            New password
            <input
              name="new-password"
              type="password"
              autoComplete="new-password"
              required
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
          </label>
          <label>
            Confirm new password
            <input
              name="confirm"
              type="password"
              autoComplete="new-password"
              required
              value={confirm}
              onInput={(e) => setConfirm(e.currentTarget.value)}
            />
          </label>
          <label class="inline">
            <input type="checkbox" name="sign-out-all" checked={signOutAll} onChange={(e) => setSignOutAll(e.currentTarget.checked)} /> Sign
            out all my sessions
          </label>
          <ErrorText error={error} />
          {status ? <p role="status">{status}</p> : null}
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Please wait…" : "Set new password"}
          </button>
          <p class="switch">
            No mail?{" "}
            <button type="button" class="link" disabled={busy} onClick={() => void send(sent.address, sent.clientSecret, sent.sendAttempt + 1)}>
              Send it again
            </button>{" "}
            or{" "}
            <button
              type="button"
              class="link"
              disabled={busy}
              onClick={() => {
                setSent(null);
                setError(null);
                setStatus(null);
              }}
            >
              use another address
            </button>
          </p>
        </>
      ) : (
        <>
          <p>Enter your account's email address, and we will mail you a link to set a new password.</p>
          <label>
            Email address
            <input
              name="email"
              type="email"
              autoComplete="email"
              required
              value={address}
              onInput={(e) => setAddress(e.currentTarget.value)}
            />
          </label>
          <ErrorText error={error} />
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Please wait…" : "Send link"}
          </button>
        </>
      )}
      <p class="switch">
        Remembered it?{" "}
        <button
          type="button"
          class="link"
          onClick={() => {
            setSent(null);
            props.onCancel();
          }}
        >
          Sign in
        </button>
      </p>
    </form>
  );
}
