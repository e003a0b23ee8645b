import { describe, expect, it } from "vitest";
import { centreSquare, downloadPath, fitBox, formatBytes, msgtypeFor, parseMxc, thumbnailPath } from "../../src/media/mxc";

describe("parseMxc", () => {
  it("splits server and media ID", () => {
    expect(parseMxc("mxc://example.org:8448/abc_DEF-1")).toEqual({ serverName: "example.org:8448", mediaId: "abc_DEF-1" });
  });
  it("refuses what is not a content URI", () => {
    for (const bad of ["https://example.org/a", "mxc://example.org", "mxc://example.org/a/b", "mxc://ex ample/a", "mxc://a/../b", 42, undefined]) {
      expect(parseMxc(bad)).toBeNull();
    }
  });
  it("builds encoded paths", () => {
    const mxc = { serverName: "localhost:8008", mediaId: "x" };
    expect(downloadPath(mxc)).toBe("/_matrix/client/v1/media/download/localhost%3A8008/x");
    expect(thumbnailPath(mxc, 64, 32, "crop")).toBe("/_matrix/client/v1/media/thumbnail/localhost%3A8008/x?width=64&height=32&method=crop");
  });
});

describe("fitBox", () => {
  it("keeps the aspect ratio inside the box", () => {
    expect(fitBox(1000, 500, 320, 240)).toEqual({ width: 320, height: 160 });
    expect(fitBox(500, 1000, 320, 240)).toEqual({ width: 120, height: 240 });
  });
  it("never enlarges small pictures", () => {
    expect(fitBox(40, 30, 320, 240)).toEqual({ width: 40, height: 30 });
  });
  it("keeps at least a pixel for extreme shapes", () => {
    expect(fitBox(100000, 1, 320, 240)).toEqual({ width: 320, height: 1 });
  });
  it("reserves the whole box when the size is unknown or nonsense", () => {
    for (const [w, h] of [[undefined, 10], [0, 10], [-5, 10], ["10", 10], [Infinity, 10], [NaN, 3]]) {
      expect(fitBox(w, h, 320, 240)).toEqual({ width: 320, height: 240 });
    }
  });
});

describe("formatBytes", () => {
  it("reads like a person would say it", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1023)).toBe("1023 B");
    expect(formatBytes(1536)).toBe("1.5 KB");
    expect(formatBytes(5 * 1024 * 1024)).toBe("5.0 MB");
    expect(formatBytes(-1)).toBe("");
    expect(formatBytes("12")).toBe("");
  });
});

describe("centreSquare", () => {
  it("crops the middle of the longer side", () => {
    expect(centreSquare(300, 200)).toEqual({ x: 50, y: 0, size: 200 });
    expect(centreSquare(200, 301)).toEqual({ x: 0, y: 50, size: 200 });
    expect(centreSquare(64, 64)).toEqual({ x: 0, y: 0, size: 64 });
  });
});

describe("msgtypeFor", () => {
  it("sends displayable pictures as images and the rest as files", () => {
    expect(msgtypeFor("image/png")).toBe("m.image");
    expect(msgtypeFor("image/jpeg")).toBe("m.image");
    expect(msgtypeFor("image/svg+xml")).toBe("m.file");
    expect(msgtypeFor("application/pdf")).toBe("m.file");
    expect(msgtypeFor("")).toBe("m.file");
  });
});
