// The console's pages in a real browser (Debian's chromium through playwright-core) against a real control
// service, one case at a time: tests/console/test_console_pages.py runs this once per case with
//   CASE             the case to run (a key of CASES below)
//   CONSOLE_URL, ADMIN_EMAIL, ADMIN_PASSWORD, CHROMIUM   as for console.e2e.mjs
// Each case has a browser of its own; it prints "ok <case>: <what>" and exits 0, or "FAILED" and exits 1.
import { check, launch, login as loginAt, managementApi } from "./support.mjs";

const base = process.env.CONSOLE_URL ?? "http://127.0.0.1:8081";
const adminEmail = process.env.ADMIN_EMAIL;
const adminPassword = process.env.ADMIN_PASSWORD;
const suffix = Math.random().toString(16).slice(2, 8);
const slug = `pg-${suffix}`;
const hidden = `pgh-${suffix}`;
const password = "pages-password-1";
const orgAdmin = `admin-${suffix}@example.com`;
const viewer = `viewer-${suffix}@example.com`;

const api = managementApi(base);

const login = (page, email, pass) => loginAt(page, base, email, pass);

const token = (await api("POST", "/api/v1/auth/login", null, { email: adminEmail, password: adminPassword })).access_token;
await api("POST", "/api/v1/orgs", token, { slug, name: `Pages ${suffix}` });
await api("POST", "/api/v1/orgs", token, { slug: hidden, name: `Hidden ${suffix}` });
await api("POST", `/api/v1/orgs/${slug}/users`, token, { email: orgAdmin, password, role: "org_admin" });
await api("POST", `/api/v1/orgs/${slug}/users`, token, { email: viewer, password, role: "org_viewer" });
const connector = await api("POST", `/api/v1/orgs/${slug}/connectors`, token,
  { name: "orders", target: { protocol: "rest", url: "http://127.0.0.1:9/orders" } });

const CASES = {
  // Finding: an API with JWT caller auth could not be made (no algorithms); scopes, leeway_s, consumer_claim.
  async "jwt-auth"(page) {
    await login(page, adminEmail, adminPassword);
    const make = async (name, fill) => {
      await page.goto(`${base}/orgs/${slug}/apis/new`);
      await page.getByLabel("Name", { exact: true }).fill(name);
      await page.getByLabel("Path").fill(`/${name}`);
      await page.getByLabel("Connector").selectOption({ label: "orders" });
      await fill();
      await page.getByRole("button", { name: "Create API" }).click();
      await page.waitForURL(/\/apis\/[0-9a-f-]{36}$/);
      return (await api("GET", `/api/v1/orgs/${slug}/apis/${name}`, token)).auth;
    };
    const hmac = await make("jwt-hmac", async () => {
      await page.getByLabel("Caller authentication").selectOption("jwt");
      await page.getByLabel("Shared secret (HS256…)").fill("s".repeat(40));
      await page.getByRole("checkbox", { name: "HS384" }).check();
      await page.getByLabel("Required scopes").fill("orders:read, orders:write");
      await page.getByLabel("Leeway (s)").fill("10");
      await page.getByLabel("Consumer claim").fill("client_id");
    });
    check(JSON.stringify(hmac.algorithms) === '["HS384"]', `algorithms: ${JSON.stringify(hmac)}`);
    check(JSON.stringify(hmac.scopes) === '["orders:read","orders:write"]', `scopes: ${JSON.stringify(hmac)}`);
    check(hmac.leeway_s === 10 && hmac.consumer_claim === "client_id" && hmac.secret_set === true, JSON.stringify(hmac));
    const keys = await make("jwt-jwks", async () => {
      await page.getByLabel("Caller authentication").selectOption("jwt");
      await page.getByLabel("JWKS URL").fill("https://issuer.example.com/.well-known/jwks.json");
    });
    check(JSON.stringify(keys.algorithms) === '["RS256"]', `default algorithm with a JWKS URL: ${JSON.stringify(keys)}`);
    const oauth = await make("oauth-scopes", async () => {
      await page.getByLabel("Caller authentication").selectOption("oauth2");
      await page.getByLabel("Required scopes").fill("stock:read");
      await page.getByLabel("Consumer header").fill("X-Caller");
    });
    check(JSON.stringify(oauth.scopes) === '["stock:read"]' && oauth.consumer_header === "X-Caller", JSON.stringify(oauth));
    // Reopened, the form shows what was saved, and saves it back unchanged.
    await page.goto(`${base}/orgs/${slug}/apis/jwt-hmac`);
    check(await page.getByRole("checkbox", { name: "HS384" }).isChecked(), "HS384 checked");
    check((await page.getByLabel("Leeway (s)").inputValue()) === "10", "leeway shown");
    return "a JWT API saves its algorithms, scopes, leeway and consumer claim; oauth2 its scopes";
  },

  // Finding: a rename of an API or connector opened by name left the page on the old name (404s).
  async "rename-by-name"(page) {
    await api("POST", `/api/v1/orgs/${slug}/apis`, token, { name: "p00", methods: ["GET"], path: "/p00", connector: connector.id });
    await login(page, adminEmail, adminPassword);
    for (const [kind, name, label] of [["apis", "p00", "API"], ["connectors", "orders", "Connector"]]) {
      await page.goto(`${base}/orgs/${slug}/${kind}/${name}`);
      await page.getByLabel("Name", { exact: true }).fill(`${name}-renamed`);
      await page.getByRole("button", { name: "Save changes" }).click();
      await page.waitForURL(new RegExp(`/${kind}/[0-9a-f-]{36}$`));
      await page.getByText(new RegExp(`Saved: ${name}-renamed is at version 2`)).waitFor();
      await page.getByRole("cell", { name: "v2 (current)" }).waitFor();
      await page.reload();
      await page.getByRole("heading", { name: `${label} ${name}-renamed` }).waitFor();
      check((await page.getByRole("alert").count()) === 0, `${kind}: no error after the reload`);
    }
    return "after a rename the page goes on by id: versions and a reload work";
  },

  // Finding: after a session ended, another user logging in landed on the previous user's page.
  async "other-user-return"(page) {
    await login(page, adminEmail, adminPassword);
    await page.goto(`${base}/orgs/${slug}/audit`);
    await page.getByRole("heading", { name: "Audit log" }).waitFor();
    await page.evaluate(async () => {
      const t = sessionStorage.getItem("junction.token");
      await fetch("/api/v1/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${t}` } });
    });
    await page.reload(); // its calls carry the revoked token: 401
    const ended = page.getByRole("dialog", { name: "Your session was ended" });
    await ended.getByRole("button", { name: "Log out" }).click();
    await page.waitForURL(/\/login$/);
    await page.getByLabel("E-mail").fill(viewer);
    await page.getByLabel("Password").fill(password);
    await page.getByLabel("Password").press("Enter");
    await page.waitForURL((url) => !url.pathname.endsWith("/login"));
    await page.getByRole("heading", { name: "APIs" }).waitFor();
    check(new URL(page.url()).pathname === `/orgs/${slug}/apis`, `the viewer landed on ${page.url()}`);
    return "another user starts on their own start page, not the ended session's";
  },

  // Finding: pages of an organisation the user cannot see showed their forms and lists under the 404.
  async "hidden-org"(page) {
    await login(page, orgAdmin, password);
    for (const section of ["apis", "users", "dashboard", "consumers"]) {
      await page.goto(`${base}/orgs/${hidden}/${section}`);
      await page.getByRole("alert").filter({ hasText: "404" }).waitFor();
      const main = page.locator("main");
      check((await main.getByRole("link", { name: "New API" }).count()) === 0, `${section}: New API`);
      check((await main.getByRole("form").count()) === 0, `${section}: a form`);
      check((await main.getByText(/No APIs yet|connecting/).count()) === 0, `${section}: the page's contents`);
      check((await main.locator("h1").count()) === 0, `${section}: the page's heading`);
    }
    return "an organisation one cannot see shows its not-found message only";
  },

  // Finding: the top bar's organisation switch did not show an organisation made or renamed on /admin/orgs.
  async "org-switch"(page) {
    await login(page, adminEmail, adminPassword);
    const made = `pgn-${suffix}`;
    const form = page.getByRole("form", { name: "New organisation" });
    await form.getByLabel("Slug").fill(made);
    await form.getByLabel("Name").fill(`Fresh ${suffix}`);
    await form.getByRole("button", { name: "Create organisation" }).click();
    await page.locator(`#org-switch option[value="${made}"]`, { hasText: `Fresh ${suffix}` }).waitFor({ state: "attached" });
    await page.getByRole("row", { name: new RegExp(made) }).getByRole("button", { name: "Rename" }).click();
    await page.getByLabel(`New name of ${made}`).fill(`Renamed ${suffix}`);
    await page.getByLabel(`New name of ${made}`).press("Enter");
    await page.locator(`#org-switch option[value="${made}"]`, { hasText: `Renamed ${suffix}` }).waitFor({ state: "attached" });
    return "the organisation switch shows a new and a renamed organisation without a reload";
  },

  // Finding: Try it ran a response status of "abc" as 200.
  async "try-status"(page) {
    await login(page, adminEmail, adminPassword);
    await page.goto(`${base}/orgs/${slug}/connectors/${connector.id}`);
    const form = page.getByRole("form", { name: "Try the script" });
    await form.getByLabel("Also try transform_response").check();
    for (const bad of ["abc", "99", "600", "2.5"]) {
      await form.getByLabel("Response status").fill(bad);
      await form.getByRole("button", { name: "Run" }).click();
      await form.locator(".field.invalid", { has: page.getByLabel("Response status") })
        .getByText("must be an integer from 100 to 599").waitFor();
      check((await page.getByText(/^Ran: /).count()) === 0, `${bad}: ran anyway`);
    }
    await form.getByLabel("Response status").fill("404");
    await form.getByRole("button", { name: "Run" }).click();
    await page.getByText(/^Ran: /).first().waitFor();
    check((await form.locator(".field.invalid").count()) === 0, "404 is accepted");
    return "a response status that is not an integer from 100 to 599 is a field error";
  },

  // Finding: at the token's expiry the page went to log-in and its unsaved edits were lost.
  async "session-expiry"(page) {
    await page.clock.install({ time: new Date() });
    await login(page, adminEmail, adminPassword);
    await page.goto(`${base}/orgs/${slug}/apis/new`);
    await page.getByLabel("Name", { exact: true }).fill("unsaved-edit");
    await page.getByLabel("Path").fill("/unsaved");
    await page.getByLabel("Connector").selectOption({ label: connector.name });
    await page.getByLabel("Timeout (ms)").fill("4321");
    const exp = async () => JSON.parse(atob((await page.evaluate(() => sessionStorage.getItem("junction.token"))).split(".")[1])).exp;
    const first = await exp();
    const browserNow = () => page.evaluate(() => Date.now());
    // A minute and a half before the expiry: the banner, and logging in again from it.
    await page.clock.fastForward(first * 1000 - 90_000 - (await browserNow()));
    const banner = page.getByRole("alert").filter({ hasText: "Your session ends at" });
    await banner.getByRole("button", { name: "Log in again" }).click();
    const dialog = page.getByRole("dialog", { name: "Log in again" });
    await dialog.getByLabel("Password").fill(adminPassword);
    await page.clock.setSystemTime(new Date()); // the browser's clock back in step with the server's
    await dialog.getByRole("button", { name: "Log in" }).click();
    await dialog.waitFor({ state: "detached" });
    await banner.waitFor({ state: "detached" });
    const second = await exp();
    check(second >= first, "a new token");
    check(new URL(page.url()).pathname === `/orgs/${slug}/apis/new`, `still on the page: ${page.url()}`);
    check((await page.getByLabel("Timeout (ms)").inputValue()) === "4321", "the unsaved edit is kept");
    // Past the new token's expiry: the dialog opens over the page by itself.
    await page.clock.fastForward(second * 1000 + 1000 - (await browserNow()));
    const expired = page.getByRole("dialog", { name: "Your session has expired" });
    await expired.waitFor();
    check(new URL(page.url()).pathname === `/orgs/${slug}/apis/new`, `still on the page: ${page.url()}`);
    await page.clock.setSystemTime(new Date());
    await expired.getByLabel("Password").fill(adminPassword);
    await expired.getByLabel("Password").press("Enter");
    await expired.waitFor({ state: "detached" });
    check((await page.getByLabel("Timeout (ms)").inputValue()) === "4321", "the unsaved edit is kept after the expiry");
    check((await page.getByLabel("Name", { exact: true }).inputValue()) === "unsaved-edit", "the name is kept");
    await page.getByRole("button", { name: "Create API" }).click();
    await page.getByText(/Saved: unsaved-edit is at version 1/).waitFor();
    const stored = await api("GET", `/api/v1/orgs/${slug}/apis/unsaved-edit`, token);
    check(stored.timeout_ms === 4321, `saved: ${JSON.stringify(stored)}`);
    return "a banner before the expiry, a log-in dialog over the page at it, and the unsaved edits saved after";
  },
};

const name = process.env.CASE;
const run = CASES[name];
if (!run) {
  console.error(`CASE must be one of ${Object.keys(CASES).join(", ")}`);
  process.exit(2);
}
const { context, close } = await launch(`pages-${name}`);
let failed = false;
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15000);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const what = await run(page);
  check(errors.length === 0, `page errors: ${errors.join("; ")}`);
  console.log(`ok ${name}: ${what}`);
} catch (e) {
  failed = true;
  console.error(`FAILED ${name}: ${e.stack ?? e}`);
  for (const p of context.pages()) console.error(`at ${p.url()}`);
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
