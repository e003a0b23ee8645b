import { describe, expect, it } from "vitest";
import {
  describeEmailError,
  digestAddresses,
  digestPusher,
  emailAddresses,
  emailIdentityAuth,
  loadPendingEmail,
  looksLikeAddress,
  newClientSecret,
  normalizeAddress,
  savePendingEmail,
  threepidChangesEnabled,
} from "../../src/account/email";
import { MatrixError } from "../../src/matrix/errors";

describe("client secrets", () => {
  it("are 32 characters the spec allows, and differ each time", () => {
    const secrets = new Set(Array.from({ length: 50 }, newClientSecret));
    expect(secrets.size).toBe(50);
    for (const secret of secrets) expect(secret).toMatch(/^[0-9a-zA-Z_-]{32}$/);
  });
});

describe("addresses", () => {
  it("are trimmed and lower-cased as the server keeps them", () => {
    expect(normalizeAddress("  Alice@Example.ORG ")).toBe("alice@example.org");
  });

  it("catch obvious typos only", () => {
    expect(looksLikeAddress("alice@example.org")).toBe(true);
    expect(looksLikeAddress(" Bob.Smith+chat@mail.example.co.uk ")).toBe(true);
    expect(looksLikeAddress("alice")).toBe(false);
    expect(looksLikeAddress("alice@localhost")).toBe(true);
    expect(looksLikeAddress("alice@exa@mple.org")).toBe(false);
    expect(looksLikeAddress("al ice@example.org")).toBe(false);
    expect(looksLikeAddress("@example.org")).toBe(false);
  });

  it("are read from /account/3pid, skipping other media and malformed entries", () => {
    const answer = {
      threepids: [
        { medium: "email", address: "zed@example.org", validated_at: 5, added_at: 6 },
        { medium: "msisdn", address: "447700900000" },
        { medium: "email" },
        "nonsense",
        { medium: "email", address: "amy@example.org" },
      ],
    };
    expect(emailAddresses(answer)).toEqual([
      { address: "amy@example.org", validatedAt: null },
      { address: "zed@example.org", validatedAt: 5 },
    ]);
    expect(emailAddresses({})).toEqual([]);
    expect(emailAddresses(null)).toEqual([]);
  });
});

describe("the 3PID capability", () => {
  it("is on unless the server turns it off", () => {
    expect(threepidChangesEnabled({ capabilities: { "m.3pid_changes": { enabled: false } } })).toBe(false);
    expect(threepidChangesEnabled({ capabilities: { "m.3pid_changes": { enabled: true } } })).toBe(true);
    expect(threepidChangesEnabled({ capabilities: {} })).toBe(true);
    expect(threepidChangesEnabled({})).toBe(true);
  });
});

describe("digests", () => {
  it("are on for the addresses with an m.email pusher", () => {
    const pushers = [
      { kind: "email", app_id: "m.email", pushkey: "Alice@Example.org" },
      { kind: "http", app_id: "m.email", pushkey: "bob@example.org" },
      { kind: "email", app_id: "other.app", pushkey: "carol@example.org" },
      { kind: "webpush", app_id: "org.hearth.web", pushkey: "BKey" },
      null,
    ];
    expect([...digestAddresses(pushers)]).toEqual(["alice@example.org"]);
  });

  it("are switched with the pusher spec/email.md names", () => {
    expect(digestPusher("alice@example.org", true)).toMatchObject({
      kind: "email",
      app_id: "m.email",
      pushkey: "alice@example.org",
      data: {},
      append: true,
    });
    expect(digestPusher("alice@example.org", false)).toEqual({ kind: null, app_id: "m.email", pushkey: "alice@example.org" });
  });
});

describe("a password reset's auth", () => {
  it("carries the email session's creds, and the UIA session once there is one", () => {
    expect(emailIdentityAuth("sid1", "secret")).toEqual({
      type: "m.login.email.identity",
      threepid_creds: { sid: "sid1", client_secret: "secret" },
    });
    expect(emailIdentityAuth("sid1", "secret", "uia")).toMatchObject({ session: "uia" });
  });
});

describe("email errors", () => {
  it("say what to do, keeping the server's words", () => {
    const notYet = new MatrixError(401, { errcode: "M_THREEPID_AUTH_FAILED", error: "The email address has not been verified yet" });
    expect(describeEmailError(notYet)).toBe(
      "Not confirmed yet: open the link in the mail first, press its button, then try again. (M_THREEPID_AUTH_FAILED: The email address has not been verified yet)",
    );
    expect(describeEmailError(new MatrixError(400, { errcode: "M_THREEPID_IN_USE", error: "in use" }))).toMatch(/^That address belongs to another account\./);
    expect(describeEmailError(new MatrixError(403, { errcode: "M_THREEPID_DENIED", error: "Email is not configured" }))).toMatch(
      /^This server cannot send email\./,
    );
  });

  it("leave other errors, rate limits included, to describeError", () => {
    const limited = new MatrixError(429, { errcode: "M_LIMIT_EXCEEDED", error: "slow down", retry_after_ms: 2000 });
    expect(describeEmailError(limited)).toBe("Too many attempts. Try again in 2 s. (M_LIMIT_EXCEEDED: slow down)");
    expect(describeEmailError(new Error("boom"))).toBe("boom");
  });
});

describe("a verification under way", () => {
  it("is kept in this tab's storage and forgotten on request", () => {
    const pending = { address: "alice@example.org", sid: "s1", clientSecret: "c1", sendAttempt: 2 };
    savePendingEmail("k", pending);
    expect(loadPendingEmail("k")).toEqual(pending);
    savePendingEmail("k", null);
    expect(loadPendingEmail("k")).toBeNull();
  });

  it("is not made up from whatever else is stored", () => {
    for (const junk of ["{", "null", "[]", '{"address":"a","sid":"s","clientSecret":"c","sendAttempt":0}', '{"address":1,"sid":"s","clientSecret":"c","sendAttempt":1}']) {
      sessionStorage.setItem("k", junk);
      expect(loadPendingEmail("k")).toBeNull();
    }
    sessionStorage.removeItem("k");
  });
});
