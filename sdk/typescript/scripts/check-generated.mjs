// Fails (exit 1) when src/schema.d.ts is not what openapi-typescript makes of openapi.json today.
// (The snapshot itself is checked against the code by scripts/write_openapi.py --check.)
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = mkdtempSync(join(tmpdir(), "junction-sdk-"));
try {
  const out = join(dir, "schema.d.ts");
  execFileSync(join(root, "node_modules", ".bin", "openapi-typescript"), ["openapi.json", "--output", out], {
    cwd: root,
    stdio: ["ignore", "ignore", "inherit"],
  });
  if (readFileSync(out, "utf8") !== readFileSync(join(root, "src", "schema.d.ts"), "utf8")) {
    console.error("sdk/typescript/src/schema.d.ts is stale: run `make console-types`");
    process.exit(1);
  }
  console.log("sdk/typescript/src/schema.d.ts matches openapi.json");
} finally {
  rmSync(dir, { recursive: true, force: true });
}
