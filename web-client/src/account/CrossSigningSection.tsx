import { useEffect, useRef, useState } from "preact/hooks";
import { useChat } from "../app/context";
import type { CrossSigningState } from "../crypto/crossSigning";
import { describeError } from "../matrix/errors";
import { ErrorText } from "../ui/Dialog";

/**
 * Cross-signing: make and publish one's master, self-signing and user-signing keys (the
 * server asks for the password when they would replace published ones), after which
 * other people can be verified, and this session is signed as one's own.
 */
export function CrossSigningSection(props: { password: string }) {
  const chat = useChat();
  const [state, setState] = useState<CrossSigningState | "loading" | "unavailable">("loading");
  const [error, setError] = useState<string | null>(null);
  const [status, setStatus] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  // Answers can come back out of order: only the latest question's counts.
  const asked = useRef(0);
  const refresh = async () => {
    const question = ++asked.current;
    const crypto = await chat.crypto();
    const answer = crypto ? await crypto.crossSigning.state() : "unavailable";
    if (question === asked.current) setState(answer);
  };
  // Asked again as keys change: another session may send this one the keys after verifying it.
  const epoch = chat.cryptoNow?.trustEpoch;
  useEffect(() => {
    refresh().catch((e: unknown) => setError(describeError(e)));
  }, [epoch]);

  const setUp = async (reset: boolean) => {
    if (reset && !window.confirm("Make new cross-signing keys? Everyone who verified you, and your other sessions, will have to verify again.")) return;
    setBusy(true);
    setError(null);
    setStatus(null);
    try {
      const crypto = await chat.crypto();
      if (!crypto) return;
      await crypto.crossSigning.setUp(props.password);
      setStatus("Cross-signing is set up; this session is signed with it.");
      await refresh();
    } catch (err) {
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="account-cross-signing" class="cross-signing" data-state={state}>
      <h3 id="account-cross-signing">Cross-signing</h3>
      {state === "loading" ? <p class="muted">Loading…</p> : null}
      {state === "unavailable" ? <p class="muted">Encryption is not running in this browser.</p> : null}
      {state === "on" ? <p>Set up: you can verify other people, and they see your verified sessions.</p> : null}
      {state === "elsewhere" ? (
        <>
          <p>Set up on another of your sessions. Verify this session from there (Sessions → Verify), and it gets the keys.</p>
          <p class="small muted">
            No other session left? Make new keys (with your password):{" "}
            <button type="button" disabled={busy} onClick={() => void setUp(true)}>
              Reset cross-signing
            </button>
          </p>
        </>
      ) : null}
      {state === "none" ? (
        <>
          <p>Make your cross-signing keys so you can verify other people by emoji, and they you.</p>
          <div class="actions">
            <button type="button" class="primary" disabled={busy} onClick={() => void setUp(false)}>
              Set up cross-signing
            </button>
          </div>
        </>
      ) : null}
      {status ? <p role="status">{status}</p> : null}
      <ErrorText error={error} />
    </section>
  );
}
