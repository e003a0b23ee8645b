import { defineConfig } from "vitest/config";

// Drives Debian's chromium through playwright-core against a real hearth binary.
export default defineConfig({
  test: {
    include: ["tests/browser/**/*.test.ts"],
    environment: "node",
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    globalSetup: ["tests/browser/setup.ts"],
  },
});
