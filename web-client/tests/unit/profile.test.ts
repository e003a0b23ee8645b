import { describe, expect, it } from "vitest";
import { profileChanges, timeIn } from "../../src/account/profile";

const empty = { displayname: "", "m.tz": "", "io.hearth.pronouns": "", "io.hearth.bio": "" };

describe("profileChanges", () => {
  it("sends only what changed, trimmed", () => {
    const before = { displayname: "Alice", "m.tz": "Europe/Paris" };
    expect(profileChanges(before, { ...empty, displayname: " Alice ", "m.tz": "Europe/Paris", "io.hearth.pronouns": "she/her" })).toEqual({
      set: [["io.hearth.pronouns", "she/her"]],
      remove: [],
    });
  });
  it("deletes a field whose box was emptied, and leaves absent ones alone", () => {
    expect(profileChanges({ displayname: "Alice", "io.hearth.bio": "hi" }, { ...empty, displayname: "Alice" })).toEqual({
      set: [],
      remove: ["io.hearth.bio"],
    });
  });
  it("treats a field of another type as unset and replaces it", () => {
    expect(profileChanges({ "m.tz": 5 }, { ...empty, "m.tz": "UTC" })).toEqual({ set: [["m.tz", "UTC"]], remove: [] });
  });
});

describe("timeIn", () => {
  it("gives the local time in a known zone", () => {
    const noon = new Date(Date.UTC(2026, 0, 15, 12, 30));
    // 12- or 24-hour clock, as the test machine's locale has it.
    expect(timeIn("UTC", noon)).toMatch(/12.30/);
    expect(timeIn("Asia/Tokyo", noon)).toMatch(/(21|09).30/);
  });
  it("answers null for a zone the browser does not know", () => {
    expect(timeIn("Mars/Olympus_Mons", new Date())).toBeNull();
  });
});
