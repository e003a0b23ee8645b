import { useState } from "preact/hooks";
import { useChat } from "../app/context";
import { describeError } from "../matrix/errors";
import { Dialog, ErrorText } from "../ui/Dialog";

/** Verifying another of one's sessions: accept, compare the emoji, confirm. */
export function VerificationDialog() {
  const chat = useChat();
  const verifier = chat.verifier;
  const state = verifier?.state;
  const [error, setError] = useState<string | null>(null);
  if (!verifier || !state) return null;
  const run = (action: () => Promise<void>) => {
    setError(null);
    action().catch((e: unknown) => setError(describeError(e)));
  };
  const close = () => (state.phase === "done" || state.phase === "cancelled" ? verifier.dismiss() : run(() => verifier.cancel()));
  return (
    <Dialog title="Verify a session" onClose={close}>
      <div class="verification" data-phase={state.phase}>
        {state.phase === "requested" ? (
          <>
            <p>Your session {state.otherDevice} wants to verify this one.</p>
            <div class="actions">
              <button type="button" onClick={() => run(() => verifier.cancel())}>
                Decline
              </button>
              <button type="button" class="primary" onClick={() => run(() => verifier.accept())}>
                Accept
              </button>
            </div>
          </>
        ) : null}
        {state.phase === "waiting" ? <p role="status">Waiting for session {state.otherDevice}…</p> : null}
        {state.phase === "emoji" || state.phase === "confirmed" ? (
          <>
            <p>Check that these emoji appear in the same order on session {state.otherDevice}.</p>
            <ol class="sas-emoji" aria-label="Emoji to compare">
              {state.emojis.map((emoji, i) => (
                <li key={i}>
                  <span class="sas-symbol" aria-hidden="true">
                    {emoji.symbol}
                  </span>
                  <span class="sas-name">{emoji.description}</span>
                </li>
              ))}
            </ol>
            {state.phase === "confirmed" ? (
              <p role="status">Waiting for the other session to confirm…</p>
            ) : (
              <div class="actions">
                <button type="button" onClick={() => run(() => verifier.cancel())}>
                  They don't match
                </button>
                <button type="button" class="primary" onClick={() => run(() => verifier.confirm())}>
                  They match
                </button>
              </div>
            )}
          </>
        ) : null}
        {state.phase === "done" ? <p role="status">Verified: session {state.otherDevice} is yours.</p> : null}
        {state.phase === "cancelled" ? <p role="status">Verification stopped: {state.reason}</p> : null}
        <ErrorText error={error} />
      </div>
    </Dialog>
  );
}
