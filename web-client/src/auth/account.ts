import { emailIdentityAuth } from "../account/email";
import { MatrixError } from "../matrix/errors";
import { request } from "../matrix/http";
import type { LoginResponse } from "../matrix/types";
import { isObject, str } from "../matrix/types";

const V3 = "/_matrix/client/v3";
const DEVICE_NAME = "Hearth web";

/** The server wants a registration token and none was given: the form should ask. */
export class TokenRequired extends Error {
  constructor() {
    super("This server needs a registration token to sign up.");
  }
}

export function login(user: string, password: string): Promise<LoginResponse> {
  return request<LoginResponse>("POST", `${V3}/login`, {
    body: {
      type: "m.login.password",
      identifier: { type: "m.id.user", user },
      password,
      initial_device_display_name: DEVICE_NAME,
    },
  });
}

interface UiaState {
  session: string;
  flows: string[][];
  completed: string[];
}

function uiaState(error: unknown): UiaState | null {
  if (!(error instanceof MatrixError) || error.status !== 401 || !isObject(error.body)) return null;
  const body = error.body;
  const session = str(body.session);
  if (!session || !Array.isArray(body.flows)) return null;
  const flows = body.flows
    .map((flow) => (isObject(flow) && Array.isArray(flow.stages) ? flow.stages.filter((s): s is string => typeof s === "string") : []))
    .filter((stages) => stages.length > 0);
  const completed = Array.isArray(body.completed) ? body.completed.filter((s): s is string => typeof s === "string") : [];
  return { session, flows, completed };
}

/**
 * Registers through user-interactive auth, completing the stages this client can:
 * `m.login.dummy`, and `m.login.registration_token` when a token was given.
 */
export async function register(username: string, password: string, token: string): Promise<LoginResponse> {
  const body: Record<string, unknown> = {
    username,
    password,
    initial_device_display_name: DEVICE_NAME,
  };
  let auth: Record<string, unknown> | undefined;
  for (let round = 0; round < 5; round++) {
    try {
      return await request<LoginResponse>("POST", `${V3}/register`, {
        body: auth ? { ...body, auth } : body,
      });
    } catch (error) {
      const state = uiaState(error);
      if (!state) throw error;
      const doable = (stage: string) => stage === "m.login.dummy" || (stage === "m.login.registration_token" && token !== "");
      const flow = state.flows.find((stages) => stages.every(doable));
      if (!flow) {
        if (state.flows.some((stages) => stages.includes("m.login.registration_token"))) throw new TokenRequired();
        // A failed stage comes back as a 401 with an errcode: show that, not the flows.
        if (error instanceof MatrixError && error.errcode !== "M_UNKNOWN") throw error;
        throw new Error(`This server asks for sign-up steps this client cannot do: ${state.flows.map((f) => f.join(" + ")).join(", ")}`);
      }
      const next = flow.find((stage) => !state.completed.includes(stage));
      if (!next) throw error;
      if (auth && auth.type === next && error instanceof MatrixError && error.errcode !== "M_UNKNOWN") throw error;
      auth = next === "m.login.registration_token" ? { type: next, token, session: state.session } : { type: next, session: state.session };
    }
  }
  throw new Error("Sign-up did not finish");
}

/** A forgotten password, step one: mails a link to `email` if it belongs to an account. */
export function requestPasswordResetToken(email: string, clientSecret: string, sendAttempt: number): Promise<{ sid: string }> {
  return request<{ sid: string }>("POST", `${V3}/account/password/email/requestToken`, {
    body: { email, client_secret: clientSecret, send_attempt: sendAttempt },
  });
}

/**
 * A forgotten password, step two, once the mailed link was followed: sets the new
 * password, the verified email session standing in for the old one (user-interactive
 * auth stage `m.login.email.identity`).
 */
export async function resetPassword(newPassword: string, logoutDevices: boolean, sid: string, clientSecret: string): Promise<void> {
  const body = { new_password: newPassword, logout_devices: logoutDevices };
  try {
    await request("POST", `${V3}/account/password`, { body });
    return;
  } catch (error) {
    const state = uiaState(error);
    if (!state) throw error;
    if (!state.flows.some((stages) => stages.length === 1 && stages[0] === "m.login.email.identity")) {
      throw new Error(`This server resets passwords in steps this client cannot do: ${state.flows.map((f) => f.join(" + ")).join(", ")}`);
    }
    await request("POST", `${V3}/account/password`, { body: { ...body, auth: emailIdentityAuth(sid, clientSecret, state.session) } });
  }
}
