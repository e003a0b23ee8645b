import { useEffect, useRef, useState } from "preact/hooks";
import { useChat } from "../app/context";
import { ErrorText } from "../ui/Dialog";
import type { EmailAddress, PendingEmail } from "./email";
import {
  describeEmailError,
  digestAddresses,
  digestPusher,
  emailAddresses,
  loadPendingEmail,
  looksLikeAddress,
  newClientSecret,
  normalizeAddress,
  savePendingEmail,
  threepidChangesEnabled,
} from "./email";

interface Loaded {
  /** Whether the server lets addresses be added and removed (`m.3pid_changes`). */
  changes: boolean;
  addresses: EmailAddress[];
  /** The addresses that get digests of missed messages (have an `email` pusher). */
  digests: Set<string>;
}

/**
 * The account's email addresses: adding one (the server mails a link; once it is
 * followed, the address is added with the password), removing one, and per address
 * whether digests of missed messages go to it.
 */
export function EmailSection(props: { password: string }) {
  const chat = useChat();
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [address, setAddress] = useState("");
  // Kept while the dialog is closed to read the mail.
  const pendingKey = `hearth.email.pending:${chat.client.userId}`;
  const [pending, setPendingState] = useState<PendingEmail | null>(() => loadPendingEmail(pendingKey));
  const setPending = (next: PendingEmail | null) => {
    savePendingEmail(pendingKey, next);
    setPendingState(next);
  };
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  // Answers can come back out of order: only the latest question's counts.
  const asked = useRef(0);
  const load = async () => {
    const question = ++asked.current;
    const [capabilities, threepids, pushers] = await Promise.all([
      chat.client.capabilities(),
      chat.client.threepids(),
      chat.client.pushers(),
    ]);
    if (question !== asked.current) return;
    setLoaded({
      changes: threepidChangesEnabled(capabilities),
      addresses: emailAddresses(threepids),
      digests: digestAddresses(Array.isArray(pushers.pushers) ? pushers.pushers : []),
    });
  };
  useEffect(() => {
    load().catch((e: unknown) => setError(describeEmailError(e)));
  }, []);

  const act = async (action: () => Promise<string | null>) => {
    setBusy(true);
    setError(null);
    setStatus(null);
    try {
      setStatus(await action());
    } catch (err) {
      setError(describeEmailError(err));
    } finally {
      setBusy(false);
      load().catch((e: unknown) => setError(describeEmailError(e)));
    }
  };

  const sendLink = (to: string, clientSecret: string, sendAttempt: number) =>
    act(async () => {
      const { sid } = await chat.client.requestEmailToken(to, clientSecret, sendAttempt);
      setPending({ address: to, sid, clientSecret, sendAttempt });
      setAddress("");
      return sendAttempt > 1 ? "Sent again." : null;
    });

  const confirmAdd = (verification: PendingEmail) =>
    act(async () => {
      await chat.client.withPassword(props.password, (auth) => {
        if (auth && !props.password) throw new Error("Enter your current password above, then press Continue again.");
        return chat.client.addThreepid(verification.sid, verification.clientSecret, auth);
      });
      setPending(null);
      return `Added ${verification.address}.`;
    });

  const setDigests = (to: string, on: boolean) => {
    // Shown at once; the reload after the request says what the server has.
    setLoaded((was) => {
      if (!was) return was;
      const digests = new Set(was.digests);
      if (on) digests.add(to);
      else digests.delete(to);
      return { ...was, digests };
    });
    return act(async () => {
      await chat.client.setPusher(digestPusher(to, on));
      return on ? `Digests of missed messages go to ${to}.` : `No more digests to ${to}.`;
    });
  };

  const remove = (to: string) => {
    if (!window.confirm(`Remove ${to} from your account?`)) return;
    void act(async () => {
      await chat.client.deleteThreepid(to);
      return `Removed ${to}.`;
    });
  };

  const changes = loaded?.changes ?? false;
  return (
    <section aria-labelledby="account-email" class="email-settings" data-changes={loaded ? String(changes) : "loading"}>
      <h3 id="account-email">Email</h3>
      {loaded === null ? <p class="muted">Loading…</p> : null}
      {loaded && !changes ? <p class="muted small">This server does not let accounts add or remove email addresses.</p> : null}
      {loaded && loaded.addresses.length === 0 && changes ? (
        <p class="muted small">No address yet. With one, you can reset a forgotten password and get digests of missed messages.</p>
      ) : null}
      {loaded && loaded.addresses.length > 0 ? (
        <ul class="member-list email-list">
          {loaded.addresses.map((entry) => (
            <li key={entry.address} data-address={entry.address}>
              <span class="member-name">{entry.address}</span>
              <label class="inline">
                <input
                  type="checkbox"
                  class="email-digests"
                  disabled={busy}
                  checked={loaded.digests.has(entry.address)}
                  onChange={(e) => void setDigests(entry.address, e.currentTarget.checked)}
                />{" "}
                Digests of missed messages
              </label>
              {changes ? (
                <button type="button" disabled={busy} onClick={() => remove(entry.address)}>
                  Remove
                </button>
              ) : null}
            </li>
          ))}
        </ul>
      ) : null}
      {changes && pending ? (
        <div class="email-pending">
          <p>
            We sent a link to <strong>{pending.address}</strong>. Open it and confirm, then press <em>Continue</em> (with your current password
            above).
          </p>
          <div class="actions">
            <button type="button" disabled={busy} onClick={() => setPending(null)}>
              Cancel
            </button>
            <button type="button" disabled={busy} onClick={() => void sendLink(pending.address, pending.clientSecret, pending.sendAttempt + 1)}>
              Send again
            </button>
            <button type="button" class="primary" disabled={busy} onClick={() => void confirmAdd(pending)}>
              Continue
            </button>
          </div>
        </div>
      ) : null}
      {changes && !pending ? (
        <form
          class="form email-add"
          onSubmit={(e) => {
            e.preventDefault();
            const to = normalizeAddress(address);
            if (!looksLikeAddress(to)) {
              setError("That does not look like an email address.");
              return;
            }
            if (loaded?.addresses.some((entry) => entry.address === to)) {
              setError(`${to} is already on your account.`);
              return;
            }
            void sendLink(to, newClientSecret(), 1);
          }}
        >
          <label>
            Add an address
            <input type="email" name="email" autoComplete="email" required value={address} onInput={(e) => setAddress(e.currentTarget.value)} />
          </label>
          <div class="actions">
            <button type="submit" disabled={busy}>
              Send link
            </button>
          </div>
        </form>
      ) : null}
      {status ? <p role="status">{status}</p> : null}
      <ErrorText error={error} />
    </section>
  );
}
