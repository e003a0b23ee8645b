import { defineConfig } from "vite";

// Hashed file names under assets/ let the server cache them for a year; no inline
// script or style, so the server's strict Content-Security-Policy holds.
export default defineConfig({
  build: {
    outDir: "dist",
    assetsDir: "assets",
    emptyOutDir: true,
    sourcemap: false,
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
  },
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
});
