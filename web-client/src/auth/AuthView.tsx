import { useState } from "preact/hooks";
import type { Session } from "../matrix/client";
import { describeError } from "../matrix/errors";
import { ErrorText } from "../ui/Dialog";
import { ForgotPassword, resetUnderWay } from "./ForgotPassword";
import { TokenRequired, login, register } from "./account";

/** Sign in or sign up. The server's own rules (name taken, weak password, rate limits) are shown as it states them. */
export function AuthView(props: { onSession: (session: Session) => void; notice: string | null }) {
  const [mode, setMode] = useState<"login" | "register" | "forgot">(() => (resetUnderWay() ? "forgot" : "login"));
  const [notice, setNotice] = useState<string | null>(props.notice);
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [confirm, setConfirm] = useState("");
  const [token, setToken] = useState("");
  const [needToken, setNeedToken] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    if (mode === "register" && password !== confirm) {
      setError("The two passwords differ.");
      return;
    }
    setBusy(true);
    try {
      const name = username.trim();
      const response = mode === "login" ? await login(name, password) : await register(name, password, token.trim());
      props.onSession({ userId: response.user_id, accessToken: response.access_token, deviceId: response.device_id });
    } catch (err) {
      if (err instanceof TokenRequired) setNeedToken(true);
      setError(describeError(err));
    } finally {
      setBusy(false);
    }
  };

  const switchTo = (next: "login" | "register" | "forgot") => {
    setMode(next);
    setError(null);
  };

  if (mode === "forgot") {
    return (
      <main class="auth">
        <ForgotPassword
          onCancel={() => switchTo("login")}
          onDone={() => {
            setNotice("Your password is changed: sign in with the new one.");
            setPassword("");
            switchTo("login");
          }}
        />
      </main>
    );
  }

  return (
    <main class="auth">
      <form class="auth-card" onSubmit={submit} aria-labelledby="auth-title">
        <div class="brand">
          <img src="/favicon.svg" alt="" width={40} height={40} />
          <span>Hearth</span>
        </div>
        <h1 id="auth-title">{mode === "login" ? "Sign in" : "Create an account"}</h1>
        <p class="muted">on {location.host}</p>
        {notice ? (
          <p class="notice" role="status">
            {notice}
          </p>
        ) : null}
        <label>
          Username
          <input
            name="username"
            autoComplete="username"
            required
            value={username}
            onInput={(e) => setUsername(e.currentTarget.value)}
            placeholder={mode === "login" ? "alice or @alice:server" : "alice"}
          />
        </label>
        <label>
          Password
          <input
            name="password"
            type="password"
            autoComplete={mode === "login" ? "current-password" : "new-password"}
            required
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </label>
        {mode === "register" ? (
          <label>
            Confirm password
            <input
              name="confirm"
              type="password"
              autoComplete="new-password"
              required
              value={confirm}
              onInput={(e) => setConfirm(e.currentTarget.value)}
            />
          </label>
        ) : null}
        {mode === "register" && needToken ? (
          <label>
            Registration token
            <input name="token" required value={token} onInput={(e) => setToken(e.currentTarget.value)} />
          </label>
        ) : null}
        <ErrorText error={error} />
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Please wait…" : mode === "login" ? "Sign in" : "Create account"}
        </button>
        {mode === "login" ? (
          <p class="switch">
            <button type="button" class="link" onClick={() => switchTo("forgot")}>
              Forgot password?
            </button>
          </p>
        ) : null}
        <p class="switch">
          {mode === "login" ? (
            <>
              New here?{" "}
              <button type="button" class="link" onClick={() => switchTo("register")}>
                Create an account
              </button>
            </>
          ) : (
            <>
              Have an account?{" "}
              <button type="button" class="link" onClick={() => switchTo("login")}>
                Sign in
              </button>
            </>
          )}
        </p>
      </form>
    </main>
  );
}
