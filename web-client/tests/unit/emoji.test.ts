import { describe, expect, it } from "vitest";
import { completeShortcode, replaceShortcodes, shortcodeAt } from "../../src/composer/emoji";

describe("shortcodes", () => {
  it("finds the code being typed before the caret", () => {
    expect(shortcodeAt("hello :thu", 10)).toEqual({ start: 6, prefix: "thu" });
    expect(shortcodeAt(":sm", 3)).toEqual({ start: 0, prefix: "sm" });
    expect(shortcodeAt("a:b", 3)).toBeNull();
    expect(shortcodeAt("time 10:30", 10)).toBeNull();
  });

  it("completes by prefix first", () => {
    expect(completeShortcode("thu")[0]).toEqual(["thumbsup", "👍"]);
    expect(completeShortcode("zzz")).toEqual([]);
  });

  it("replaces complete codes outside code", () => {
    expect(replaceShortcodes("nice :thumbsup: `:fire:` :nope:")).toBe("nice 👍 `:fire:` :nope:");
    expect(replaceShortcodes("```\n:tada:\n```")).toBe("```\n:tada:\n```");
  });
});
