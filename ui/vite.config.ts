/// <reference types="vitest/config" />
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The console talks to the management API on the same origin (the control service serves it at /).
// `npm run dev` proxies /api to a control service: JUNCTION_CONTROL_URL, default http://127.0.0.1:8081.
const control = process.env.JUNCTION_CONTROL_URL ?? "http://127.0.0.1:8081";

export default defineConfig({
  plugins: [react()],
  resolve: {
    // The TypeScript SDK (sdk/typescript) is compiled in from its sources; its one dependency,
    // openapi-fetch, comes from the console's own node_modules.
    alias: { "@junction/sdk": fileURLToPath(new URL("../sdk/typescript/src/index.ts", import.meta.url)) },
    dedupe: ["openapi-fetch"],
  },
  build: { outDir: "dist", assetsDir: "assets", sourcemap: false, chunkSizeWarningLimit: 1500 },
  server: { proxy: { "/api": control }, fs: { allow: [".."] } },
  test: {
    environment: "jsdom",
    include: ["test/**/*.test.{ts,tsx}"],
    setupFiles: ["test/setup.ts"],
    testTimeout: 20000,
  },
});
