// What both browser tests share: Debian's chromium through playwright-core, with a fresh profile and the
// flags this machine's closed network needs (no background fetches), and their step/check helpers.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

/** A caller of the management API at `base`: `api(method, path, token, body)` answers the JSON (null for
 * none), or throws with the status and body. */
export function managementApi(base) {
  return async function api(method, path, token, body) {
    const r = await fetch(base + path, {
      method,
      headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
}

export function check(cond, message) {
  if (!cond) throw new Error(message);
}

const started = Date.now();
// The time since the start, so a slow step stands out in the test's output.
export const step = (name) => console.log(`ok ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);

/** A browser of its own (CHROMIUM, default /usr/bin/chromium) at 1280×800; `close()` ends it and its profile. */
export async function launch(name) {
  const profile = mkdtempSync(join(tmpdir(), `junction-${name}-chromium-`));
  // A fresh profile (--user-data-dir) each run: playwright-core takes it as launchPersistentContext's argument.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

/** Until the page shows its data: the network idle, or on the dashboard, whose metrics stream keeps a
 * request open (the network is never idle there), the stream live. */
export async function settled(page) {
  if (new URL(page.url()).pathname.endsWith("/dashboard")) {
    await page.getByRole("status").getByText("● live").waitFor();
  } else {
    await page.waitForLoadState("networkidle").catch(() => {});
  }
}

/** Log in through the console's page at `base` as `email`, and wait until it has left the log-in page. */
export async function login(page, base, email, pass) {
  await page.goto(`${base}/login`);
  await page.getByLabel("E-mail").fill(email);
  await page.getByLabel("Password").fill(pass);
  await page.getByLabel("Password").press("Enter");
  await page.waitForURL((url) => !url.pathname.endsWith("/login"));
}

/** `shot(page, name)`: a full-page screenshot `<name>.png` in `out` (OUT_DIR), or nothing without one. */
export function screenshots(out) {
  if (out) mkdirSync(out, { recursive: true });
  return async (page, name) => out && page.screenshot({ path: join(out, `${name}.png`), fullPage: true });
}

// The same JSON, whatever the order of an object's keys (PostgreSQL's jsonb keeps its own).
const canon = (v) => Array.isArray(v) ? v.map(canon)
  : v && typeof v === "object" ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])])) : v;
export const sameJson = (a, b) => JSON.stringify(canon(a)) === JSON.stringify(canon(b));

/** A new organisation `slug` with an org admin and an org viewer (both with `password`), made by the global
 * admin; the global admin's token and the org admin's. */
export async function orgWithAdminAndViewer(api, { adminEmail, adminPassword, slug, name, password, orgAdmin, viewer }) {
  const admin = (await api("POST", "/api/v1/auth/login", null, { email: adminEmail, password: adminPassword })).access_token;
  await api("POST", "/api/v1/orgs", admin, { slug, name });
  await api("POST", `/api/v1/orgs/${slug}/users`, admin, { email: orgAdmin, password, role: "org_admin" });
  await api("POST", `/api/v1/orgs/${slug}/users`, admin, { email: viewer, password, role: "org_viewer" });
  return { admin, adminToken: (await api("POST", "/api/v1/auth/login", null, { email: orgAdmin, password })).access_token };
}
