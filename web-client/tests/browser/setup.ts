// Runs once before all browser test files, which each add their screenshots.
import { rmSync } from "node:fs";
import { SCREENSHOTS } from "./harness";

/** Screenshots of this run only, not a stale failure from an earlier one. */
export default function clearScreenshots(): void {
  rmSync(SCREENSHOTS, { recursive: true, force: true });
}
