import { resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { defineConfig } from "vite";
import type { Plugin } from "vite";

/**
 * A gzipped copy beside each WebAssembly module (the encryption module is 8 MB, 2 MB
 * gzipped); the server sends it to browsers that accept gzip.
 */
function gzipWasm(): Plugin {
  return {
    name: "hearth-gzip-wasm",
    apply: "build",
    generateBundle(_options, bundle) {
      for (const [fileName, output] of Object.entries(bundle)) {
        if (output.type !== "asset" || !fileName.endsWith(".wasm")) continue;
        this.emitFile({ type: "asset", fileName: `${fileName}.gz`, source: gzipSync(output.source, { level: 9 }) });
      }
    },
  };
}

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
  plugins: [gzipWasm()],
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
});
