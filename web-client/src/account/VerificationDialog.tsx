import { useState } from "preact/hooks";
import { useChat } from "../app/context";
import { describeError } from "../matrix/errors";
import { Dialog, ErrorText } from "../ui/Dialog";

/** Verifying another of one's sessions, or another person: accept, compare the emoji, confirm. */
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
  const person = state.kind === "person";
  const who = person ? state.other : `session ${state.other}`;
  const close = () => (state.phase === "done" || state.phase === "cancelled" ? verifier.dismiss() : run(() => verifier.cancel()));
  return (
    <Dialog title={person ? "Verify a person" : "Verify a session"} onClose={close}>
      <div class="verification" data-phase={state.phase}>
        {state.phase === "requested" ? (
          <>
            <p>{person ? `${state.other} wants to verify you, and you them.` : `Your session ${state.other} wants to verify this one.`}</p>
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
        {state.phase === "waiting" ? <p role="status">Waiting for {who}…</p> : null}
        {state.phase === "emoji" || state.phase === "confirmed" ? (
          <>
            <p>
              {person
                ? `Check with ${state.other} (in person, or on a call) that these emoji appear in the same order on their screen.`
                : `Check that these emoji appear in the same order on session ${state.other}.`}
            </p>
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
              <p role="status">Waiting for {person ? state.other : "the other session"} to confirm…</p>
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
        {state.phase === "done" ? <p role="status">{person ? `Verified: ${state.other} is who their keys say.` : `Verified: session ${state.other} is yours.`}</p> : null}
        {state.phase === "cancelled" ? <p role="status">Verification stopped: {state.reason}</p> : null}
        <ErrorText error={error} />
      </div>
    </Dialog>
  );
}
