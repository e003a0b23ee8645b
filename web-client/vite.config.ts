import { resolve } from "node:path";
import { defineConfig } from "vite";

// Hashed file names under assets/ let the server cache them for a year; no inline
// script or style, so the server's strict Content-Security-Policy holds. The service
// worker is the one script with a fixed name, /sw.js, at the root so that its scope is
// the whole app; it imports nothing the app shares, so it is one self-contained file.
export default defineConfig({
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    sourcemap: false,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    rollupOptions: {
      input: {
        index: resolve(__dirname, "index.html"),
        sw: resolve(__dirname, "src/notify/sw.ts"),
      },
      output: {
        entryFileNames: (chunk) => (chunk.name === "sw" ? "sw.js" : "assets/[name]-[hash].js"),
      },
    },
  },
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
});
