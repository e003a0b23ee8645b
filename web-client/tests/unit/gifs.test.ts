import { describe, expect, it } from "vitest";
import { gifMessage, parseGifPage } from "../../src/composer/gifs";

describe("GIF search answers", () => {
  it("keeps well-formed results and the next offset", () => {
    const page = parseGifPage({
      results: [
        { id: "abc123", title: "Cat", width: 100, height: 80 },
        { id: "../evil", title: "x", width: 1, height: 1 },
        { title: "no id" },
        "junk",
        { id: "def456", width: "100" },
      ],
      next_offset: 24,
    });
    expect(page).toEqual({
      results: [
        { id: "abc123", title: "Cat", width: 100, height: 80 },
        { id: "def456", title: "", width: null, height: null },
      ],
      nextOffset: 24,
    });
    expect(parseGifPage(null)).toEqual({ results: [], nextOffset: null });
  });

  it("sends an imported GIF as an ordinary m.image", () => {
    const info = { mimetype: "image/gif", w: 40, h: 30, size: 1234 };
    expect(gifMessage({ content_uri: "mxc://hs/abc", title: " Cat Dance GIF ", info })).toEqual({
      msgtype: "m.image",
      body: "Cat Dance GIF",
      url: "mxc://hs/abc",
      info,
    });
    expect(gifMessage({ content_uri: "mxc://hs/abc", title: "", info }).body).toBe("GIF");
  });
});
