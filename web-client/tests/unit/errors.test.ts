import { describe, expect, it } from "vitest";
import { MatrixError, NetworkError, describeError } from "../../src/matrix/errors";

describe("describeError", () => {
  it("puts our words first and keeps the server's", () => {
    const taken = new MatrixError(400, { errcode: "M_USER_IN_USE", error: "User ID already taken" });
    expect(describeError(taken)).toBe("That username is already taken. (M_USER_IN_USE: User ID already taken)");
  });

  it("says when to try again after a rate limit", () => {
    const limited = new MatrixError(429, { errcode: "M_LIMIT_EXCEEDED", error: "Too many failed logins", retry_after_ms: 12_300 });
    expect(limited.retryAfterMs).toBe(12_300);
    expect(describeError(limited)).toBe("Too many attempts. Try again in 13 s. (M_LIMIT_EXCEEDED: Too many failed logins)");
  });

  it("copes with answers that are not Matrix errors", () => {
    expect(describeError(new MatrixError(502, null))).toBe("(M_UNKNOWN: HTTP 502)");
    expect(describeError(new NetworkError("Failed to fetch"))).toBe("Cannot reach the server: Failed to fetch");
  });
});
