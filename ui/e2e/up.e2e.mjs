// The console end to end on a whole running Junction (`junction up --demo`): ingress, processors, egress,
// control and the demo upstream. tests/console/test_console_up_e2e.py starts it and runs this with:
//   CONSOLE_URL    control (which serves the console), INGRESS_URL, UPSTREAM_URL (the demo upstream)
//   ADMIN_EMAIL, ADMIN_PASSWORD   the global admin
//   CHROMIUM       the browser (default /usr/bin/chromium)
//   OUT_DIR        where the screenshots go
// Each role logs in through the page; everything is made through the console's forms. It prints one
// "ok <step>" line per step, "screenshot <path>" per screenshot, and exits 1 at the first failure.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { check, launch, settled, step } from "./support.mjs";

const base = process.env.CONSOLE_URL;
const ingress = process.env.INGRESS_URL;
const upstream = process.env.UPSTREAM_URL;
const out = process.env.OUT_DIR;
mkdirSync(out, { recursive: true });
const suffix = Math.random().toString(16).slice(2, 8);
const slug = `up-${suffix}`;
const orgAdmin = { email: `admin-${suffix}@example.com`, password: "org-admin-password-1" };
const viewer = { email: `viewer-${suffix}@example.com`, password: "viewer-password-1" };
const global = { email: process.env.ADMIN_EMAIL, password: process.env.ADMIN_PASSWORD };

const FAILING = 'def transform_request(request, ctx):\n    raise ValueError("not ready yet")\n';
const FIXED = "def transform_request(request, ctx):\n    request.headers['X-Fixed'] = 'yes'\n    return request\n";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Retry `fn` (which throws or returns false while not yet true) until it holds, up to `ms`. */
async function eventually(what, fn, ms = 30000) {
  const until = Date.now() + ms;
  let last;
  for (;;) {
    try {
      if ((await fn()) !== false) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`${what}: not within ${ms} ms${last ? ` (${last.message ?? last})` : ""}`);
    await sleep(500);
  }
}

const { context, close } = await launch("up-e2e");
let failed = false;
const pageErrors = [];
const page = context.pages()[0] ?? (await context.newPage());
page.setDefaultTimeout(15000);
page.on("pageerror", (e) => pageErrors.push(String(e)));

async function shot(name) {
  const path = join(out, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot ${path}`);
}

async function login(who, landing) {
  await page.goto(base + "/login");
  await page.getByLabel("E-mail").fill(who.email);
  await page.getByLabel("Password").fill(who.password);
  await page.getByLabel("Password").press("Enter");
  await page.waitForURL(landing);
}

async function logout() {
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL(/\/login$/);
}

async function setScript(text) {
  const editor = page.locator(".script-editor .cm-content");
  await editor.click();
  await page.keyboard.press("Control+a");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(text); // as a paste would: no auto-indent
}

async function noSidewaysScroll(name) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `${name} overflows sideways by ${overflow}px`);
}

try {
  // -- global admin: an organisation, its admin and its viewer, through the forms --------------------------
  await login(global, /\/admin\/orgs$/);
  const orgForm = page.getByRole("form", { name: "New organisation" });
  await orgForm.getByLabel("Slug").fill(slug);
  await orgForm.getByLabel("Name").fill(`Up ${suffix}`);
  await orgForm.getByLabel("Name").press("Enter");
  await page.getByRole("link", { name: `Up ${suffix}` }).waitFor();
  await page.goto(`${base}/orgs/${slug}/users`);
  const userForm = page.getByRole("form", { name: "New user" });
  for (const [who, role] of [[orgAdmin, "org_admin"], [viewer, "org_viewer"]]) {
    await userForm.getByLabel("E-mail").fill(who.email);
    await userForm.getByLabel("Password").fill(who.password);
    await userForm.getByLabel("Role").selectOption(role);
    await userForm.getByRole("button", { name: "Add user" }).click();
    await page.getByRole("cell", { name: who.email, exact: true }).waitFor();
  }
  await page.goto(`${base}/admin/alert-rules`);
  await page.getByRole("heading", { name: "Global alert rules" }).waitFor();
  await shot("global-alert-rules-1280");
  step("global admin: an organisation with an org admin and a viewer, made in the forms");
  await page.getByRole("link", { name: "Instances" }).click();
  for (const service of ["ingress", "processors", "egress"]) {
    await page.getByRole("cell", { name: service, exact: true }).waitFor();
  }
  await page.getByText(/Every instance has applied the configuration/).waitFor();
  check((await page.getByRole("cell", { name: "applied", exact: true }).count()) === 3, "three instances applied");
  check((await page.getByRole("cell", { name: "just now", exact: true }).count()) === 3, "each reported just now");
  await shot("instances-1280");
  step("global admin: the instances page lists ingress, processors and egress, each applied");
  await logout();

  // -- org admin: a connector whose script raises, and an API on it --------------------------------------
  await login(orgAdmin, new RegExp(`/orgs/${slug}/apis$`));
  await page.goto(`${base}/orgs/${slug}/connectors/new`);
  await page.getByLabel("Name", { exact: true }).fill("stock");
  await page.getByLabel("Upstream URL").fill(`${upstream}/echo/stock`);
  await setScript(FAILING);
  await page.getByRole("button", { name: "Create connector" }).click();
  await page.waitForURL(/\/connectors\/[0-9a-f-]{36}$/);
  await page.getByText(/Saved: stock is at version 1/).waitFor();
  const connectorUrl = page.url();

  await page.goto(`${base}/orgs/${slug}/apis/new`);
  await page.getByLabel("Name", { exact: true }).fill("stock-api");
  await page.getByLabel("Path").fill("/stock");
  await page.getByLabel("Connector").selectOption({ label: "stock" });
  await page.getByLabel("Timeout (ms)").fill("5000");
  await page.getByRole("button", { name: "Create API" }).click();
  await page.waitForURL(/\/apis\/[0-9a-f-]{36}$/);
  await page.getByText(/Saved: stock-api is at version 1/).waitFor();
  const apiUrl = page.url();
  step("org admin: a connector with a script and an API, made in the forms");
  await page.getByText("Live on every instance.").waitFor();
  step("the page says when the new API is live on every instance");

  // -- a call through ingress fails in the script: a dead letter ------------------------------------------
  // Live on every instance: the first call is served by the new API, with no retry.
  const r = await fetch(`${ingress}/${slug}/stock?sku=B-7`);
  const failedCall = { status: r.status, body: await r.json().catch(() => ({})) };
  check(failedCall.body.code === "transform_failed", `first call after "live": ${JSON.stringify(failedCall)}`);
  step(`a call through ingress fails in the script (${failedCall.status} transform_failed)`);

  await page.goto(`${base}/orgs/${slug}/dead-letters`);
  await eventually("the dead letter is listed", async () => {
    await page.reload();
    await page.getByRole("cell", { name: /transform_failed/ }).first().waitFor({ timeout: 2000 });
  });
  await shot("dead-letters-1280");
  step("the dead letter shows on the dead-letters page");

  // -- fix the script in the editor: a new connector version ------------------------------------------------
  await page.goto(connectorUrl);
  await setScript(FIXED);
  await page.getByRole("button", { name: "Save changes" }).click();
  await page.getByText(/Saved: stock is at version 2/).waitFor();
  await shot("connector-editor-1280");
  let okCall;
  await eventually("the fixed script reaches processors", async () => {
    const r = await fetch(`${ingress}/${slug}/stock?sku=B-8`);
    okCall = { status: r.status, body: await r.json().catch(() => ({})) };
    return r.status === 200;
  });
  check(okCall.body.path === "/echo/stock" && okCall.body.headers?.["X-Fixed"] === "yes", JSON.stringify(okCall.body));
  step("the script fixed in the editor (version 2): the call goes through");

  // -- the calls in the request logs and on the dashboard ------------------------------------------------
  // A call ingress refuses (no API at the path) is logged too, answered by ingress.
  const refused = await fetch(`${ingress}/${slug}/no-api-here`);
  check(refused.status === 404 && refused.headers.get("x-correlation-id"), `refused: ${refused.status}`);
  const refusedId = refused.headers.get("x-correlation-id");
  await page.goto(`${base}/orgs/${slug}/logs`);
  await eventually("both calls in the request log", async () => {
    await page.reload();
    await page.getByRole("cell", { name: "200", exact: true }).first().waitFor({ timeout: 2000 });
    await page.getByRole("cell", { name: "transform_failed", exact: true }).first().waitFor({ timeout: 2000 });
    const row = page.getByRole("row", { has: page.getByRole("button", { name: refusedId }) });
    await row.getByRole("cell", { name: "ingress", exact: true }).waitFor({ timeout: 2000 });
    await row.getByRole("cell", { name: "route_not_found", exact: true }).waitFor({ timeout: 2000 });
  });
  await shot("logs-1280");
  step("the calls are in the request logs");

  await page.goto(`${base}/orgs/${slug}/dashboard`);
  const callsTile = page.locator(".tile", { hasText: "Calls (15 min)" }).locator("strong");
  await eventually("the calls on the dashboard", async () => {
    if (Number(await callsTile.textContent()) >= 2) return true;
    await page.reload();
    await callsTile.waitFor();
    return false;
  }, 45000);
  await shot("dashboard-1280");
  step(`the calls are on the dashboard (${await callsTile.textContent()} calls)`);
  // The same, for the one API: chosen by name in the dashboard's selector (?api= in the URL).
  await page.getByLabel("API", { exact: true }).selectOption({ label: "stock-api (/stock)" });
  await page.waitForURL(/[?&]api=[0-9a-f-]{36}/);
  await eventually("the API's calls on its dashboard", async () => {
    await page.reload();  // the API's own series, read afresh (not the organisation's still on screen)
    await callsTile.waitFor();
    await page.waitForTimeout(1000);
    return Number(await callsTile.textContent()) >= 2;
  }, 30000);
  step(`the API's own dashboard shows its calls (${await callsTile.textContent()} calls)`);

  // -- roll back a version (the API: timeout changed, then rolled back) ----------------------------------
  await page.goto(apiUrl);
  await page.getByLabel("Timeout (ms)").fill("7000");
  await page.getByRole("button", { name: "Save changes" }).click();
  await page.getByText(/is at version 2/).waitFor();
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Roll back to v1" }).click();
  await page.getByRole("cell", { name: "v3 (current)" }).waitFor();
  check((await page.getByLabel("Timeout (ms)").inputValue()) === "5000", "rolled back to 5000 ms");
  await shot("api-versions-1280");
  step("a rollback makes version 3 equal to version 1");

  // -- replay the dead letter: dry run, then the job and its outcome --------------------------------------
  await page.goto(`${base}/orgs/${slug}/dead-letters`);
  await page.getByRole("checkbox", { name: /for replay/ }).first().check();
  await page.getByRole("button", { name: "Dry run" }).click();
  await page.getByTestId("dry-run").getByText(/1 dead letter would be replayed/).waitFor();
  await shot("replay-dry-run-1280");
  await page.getByRole("button", { name: "Start replay of 1" }).click();
  await page.waitForURL(/\/replays\/[0-9a-f-]+$/);
  await page.getByTestId("replay-status").getByText("Done").waitFor({ timeout: 60000 });
  const outcome = await page.getByTestId("outcome").first().textContent();
  check(outcome === "succeeded", `replay outcome: ${outcome}`);
  await shot("replay-job-1280");
  await page.goto(`${base}/orgs/${slug}/replays`);
  await page.getByRole("cell", { name: /1\/1 \(1 succeeded/ }).waitFor();
  step("the dead letter replayed from the page: dry run, job, outcome succeeded");

  // -- alert rules: a field error from the API, then created, edited, versions ------------------------------
  await page.goto(`${base}/orgs/${slug}/alert-rules/new`);
  await page.getByLabel("Name", { exact: true }).fill("traffic");
  await page.getByLabel("Metric").selectOption("calls_per_second");
  await page.getByLabel("Comparison").selectOption(">=");
  await page.getByLabel("Threshold").fill("0");
  await page.getByLabel("Window").fill("7x");
  await page.getByLabel("Webhooks").fill(`${upstream}/echo/hook`);
  await page.getByRole("button", { name: "Create alert rule" }).click();
  const windowField = page.locator(".field.invalid", { has: page.getByLabel("Window") });
  await windowField.locator(".field-error").waitFor();
  await shot("alert-rule-field-error-1280");
  await page.getByLabel("Window").fill("10s");
  await page.getByLabel("Webhook signing secret").fill("a-webhook-secret-of-some-length");
  await page.getByRole("button", { name: "Create alert rule" }).click();
  await page.waitForURL(/\/alert-rules\/[0-9a-f-]{36}$/);
  await page.getByText(/Saved: traffic is at version 1/).waitFor();
  check((await page.getByLabel("Webhook signing secret").inputValue()) === "", "the secret is never shown");
  await page.getByText("a secret is stored (never shown)").waitFor();
  await page.getByLabel("Description").fill("any traffic at all");
  await page.getByRole("button", { name: "Save changes" }).click();
  await page.getByText(/is at version 2/).waitFor();
  await page.getByRole("region", { name: /Changes: Version 1 and Version 2/ }).getByText("description").waitFor();
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Roll back to v1" }).click();
  await page.getByRole("cell", { name: "v3 (current)" }).waitFor();
  await shot("alert-rule-1280");
  step("alert rule: the API's field error under Window, created, edited, rolled back; the secret write-only");

  // -- the alert fires (calls_per_second >= 0 holds at once); acknowledge it -----------------------------
  await page.goto(`${base}/orgs/${slug}/alerts`);
  await page.getByLabel("State").selectOption("firing");
  await eventually("the alert fires", async () => {
    if ((await page.getByRole("button", { name: "Acknowledge" }).count()) > 0) return true;
    await page.getByLabel("State").selectOption("");
    await page.getByLabel("State").selectOption("firing");
    return false;
  }, 45000);
  await page.getByRole("button", { name: "Acknowledge" }).first().click();
  await page.getByRole("cell", { name: new RegExp(`by ${orgAdmin.email.replace(/[.]/g, "\\.")}`) }).waitFor();
  await shot("alerts-1280");
  step("the alert fires and is acknowledged from the page");

  // -- the main pages at a phone's size: no sideways scrolling --------------------------------------------
  const views = [
    ["dashboard", `/orgs/${slug}/dashboard`], ["logs", `/orgs/${slug}/logs`], ["dead-letters", `/orgs/${slug}/dead-letters`],
    ["replays", `/orgs/${slug}/replays`], ["alert-rules", `/orgs/${slug}/alert-rules`], ["alerts", `/orgs/${slug}/alerts`],
    ["connector-editor", new URL(connectorUrl).pathname],
  ];
  for (const [width, height] of [[1280, 800], [390, 844]]) {
    await page.setViewportSize({ width, height });
    for (const [name, path] of views) {
      await page.goto(base + path);
      await page.locator("main h1").first().waitFor();
      await settled(page);
      if (name === "dashboard") {
        await eventually("the dashboard's calls", async () => Number(await callsTile.textContent()) >= 2, 15000);
      }
      await noSidewaysScroll(`${name} at ${width}x${height}`);
      if (width !== 1280 || ["replays", "alert-rules"].includes(name)) await shot(`${name}-${width}`);
    }
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  step("no sideways overflow at 1280x800 and 390x844");
  await logout();

  // -- viewer: reads everything, no replay, acknowledge or edit -------------------------------------------
  await login(viewer, new RegExp(`/orgs/${slug}/apis$`));
  await page.goto(`${base}/orgs/${slug}/dead-letters`);
  await page.getByRole("cell", { name: /transform_failed/ }).first().waitFor();
  check((await page.getByRole("checkbox").count()) === 0, "viewer: no replay choice");
  check((await page.getByRole("button", { name: /Dry run|Start replay/ }).count()) === 0, "viewer: no replay");
  await page.goto(`${base}/orgs/${slug}/replays`);
  await page.getByRole("cell", { name: /1\/1 \(1 succeeded/ }).waitFor();
  await page.goto(`${base}/orgs/${slug}/alerts`);
  await page.getByRole("link", { name: "traffic" }).first().waitFor();
  check((await page.getByRole("button", { name: "Acknowledge" }).count()) === 0, "viewer: no acknowledge");
  await page.goto(`${base}/orgs/${slug}/alert-rules`);
  await page.getByRole("link", { name: "traffic" }).click();
  await page.getByLabel("Threshold").waitFor();
  check((await page.getByRole("link", { name: "New alert rule" }).count()) === 0, "viewer: no new rule");
  check((await page.getByRole("button", { name: /Save|Create|Roll back/ }).count()) === 0, "viewer: no save or rollback");
  check((await page.getByLabel("Webhook signing secret").count()) === 0, "viewer: no secret field");
  await shot("viewer-alert-rule-1280");
  await page.goto(`${base}/admin/orgs`);
  await page.getByText("Only a global admin may open this page.").waitFor();
  step("viewer: reads dead letters, replays, alerts and rules; no replay, acknowledge or edit");

  check(pageErrors.length === 0, `page errors: ${pageErrors.join("; ")}`);
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e.stack ?? e}`);
  await page.screenshot({ path: join(out, "failure.png"), fullPage: true }).catch(() => {});
  console.error(`at ${page.url()} (screenshot ${join(out, "failure.png")})`);
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
