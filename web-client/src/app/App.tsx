import { useState } from "preact/hooks";
import { AuthView } from "../auth/AuthView";
import { clearSession, loadSession, saveSession } from "../auth/session";
import type { Session } from "../matrix/client";
import { ChatView } from "./ChatView";

export function App() {
  const [session, setSession] = useState<Session | null>(loadSession());
  const [notice, setNotice] = useState<string | null>(null);
  if (!session) {
    return (
      <AuthView
        notice={notice}
        onSession={(s) => {
          saveSession(s);
          setNotice(null);
          setSession(s);
        }}
      />
    );
  }
  return (
    <ChatView
      key={session.accessToken}
      session={session}
      onSignedOut={(message) => {
        clearSession();
        setNotice(message);
        setSession(null);
      }}
    />
  );
}
