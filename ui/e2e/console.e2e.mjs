// End-to-end test of the web console in a real browser (Debian's chromium through playwright-core)
// against a real control service. tests/console/test_console_e2e.py starts the service (PostgreSQL,
// Redis, the broker) and runs this with:
//   CONSOLE_URL      the control service, e.g. http://127.0.0.1:8081
//   ADMIN_EMAIL, ADMIN_PASSWORD   a global admin
//   CHROMIUM         the browser (default /usr/bin/chromium)
//   OUT_DIR          where the screenshots go (default ui/e2e/out)
// It prints one "ok <step>" line per step and exits 1 at the first failure.
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { check, launch, managementApi, settled, step } from "./support.mjs";

const base = process.env.CONSOLE_URL ?? "http://127.0.0.1:8081";
const adminEmail = process.env.ADMIN_EMAIL;
const adminPassword = process.env.ADMIN_PASSWORD;
const out = process.env.OUT_DIR ?? join(dirname(fileURLToPath(import.meta.url)), "out");
mkdirSync(out, { recursive: true });
const suffix = Math.random().toString(16).slice(2, 8);
const slug = `e2e-${suffix}`;
const viewerEmail = `viewer-${suffix}@example.com`;
const viewerPassword = "viewer-password-1";


const api = managementApi(base);

const { context, close } = await launch("e2e");
let failed = false;
const consoleErrors = [];

try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15000);
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

  // -- log in with the keyboard only ---------------------------------------------------------------
  await page.goto(base + "/");
  await page.waitForURL(/\/login$/);
  await page.getByLabel("E-mail").focus();
  await page.keyboard.type(adminEmail);
  await page.keyboard.press("Tab");
  await page.keyboard.type(adminPassword);
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/admin\/orgs$/);
  await page.getByRole("heading", { name: "Organisations" }).waitFor();
  step("login with the keyboard lands a global admin on the organisations");

  // -- create an organisation with the keyboard (fill, Enter) -----------------------------------------
  const orgForm = page.getByRole("form", { name: "New organisation" });
  await orgForm.getByLabel("Slug").fill(slug);
  // "Name" in the organisation's name: the fields named "Name" below must still be found by their own label.
  await orgForm.getByLabel("Name").fill(`E2E Name ${suffix}`);
  await orgForm.getByLabel("Name").press("Enter");
  await page.getByRole("link", { name: `E2E Name ${suffix}` }).waitFor();
  step("create an organisation by pressing Enter in its form");

  // A viewer of the organisation, for later (made through the API, as a script would).
  const token = await page.evaluate(() => sessionStorage.getItem("junction.token"));
  await api("POST", `/api/v1/orgs/${slug}/users`, token, { email: viewerEmail, password: viewerPassword, role: "org_viewer" });

  // -- a connector whose script does not compile: the error line is marked -----------------------------
  await page.goto(`${base}/orgs/${slug}/connectors/new`);
  // Once the top bar's organisation switch shows this organisation, whose name has "Name" in it.
  await page.waitForFunction((s) => document.querySelector(".org-switch select")?.value === s, slug);
  await page.getByLabel("Name").fill("orders");
  await page.getByLabel("Upstream URL").fill("http://127.0.0.1:9/orders");
  const editor = page.locator(".script-editor .cm-content");
  await editor.click();
  await page.keyboard.press("Control+a");
  await page.keyboard.press("Delete");
  // CodeMirror auto-indents and closes brackets as one types: insert the text as a paste would.
  await page.keyboard.insertText("def transform_request(request, ctx):\n    return (\n");
  await page.getByRole("button", { name: "Create connector" }).click();
  const marked = page.locator('.cm-errorLine[data-error-line]');
  await marked.waitFor();
  const line = await marked.getAttribute("data-error-line");
  const message = await page.getByTestId("script-error").textContent();
  check(Number(line) >= 2, `error line ${line}`);
  check(message.startsWith(`Line ${line}:`), `script error message: ${message}`);
  check((await page.locator(".cm-errorMarker").count()) === 1, "one gutter marker");
  await page.screenshot({ path: join(out, "connector-script-error-1280.png"), fullPage: true });
  step(`a script that does not compile has line ${line} marked`);

  await editor.click();
  await page.keyboard.press("Control+a");
  await page.keyboard.press("Delete");
  await page.keyboard.insertText(
    "def transform_request(request, ctx):\n    request.headers['X-E2E'] = 'yes'\n    return request\n",
  );
  await page.getByRole("button", { name: "Create connector" }).click();
  await page.waitForURL(/\/connectors\/[0-9a-f-]{36}$/);
  await page.getByText(/Saved: orders is at version 1/).waitFor();
  check((await page.locator(".cm-errorLine").count()) === 0, "no line marked after the fix");
  step("the fixed script saves (version 1)");

  await page.getByRole("form", { name: "Try the script" }).getByRole("button", { name: "Run" }).click();
  await page.getByText("Ran: transform_request").waitFor();
  await page.getByText('"X-E2E"').first().waitFor();
  step("try it runs the editor's script on a sample request");

  // -- an API with a validation error shown at its field, then fixed ------------------------------------
  await page.goto(`${base}/orgs/${slug}/apis/new`);
  await page.getByLabel("Name", { exact: true }).fill("orders-api");
  await page.getByLabel("Path").fill("/orders/{id}");
  await page.getByLabel("Connector").selectOption({ label: "orders" });
  await page.getByLabel("Timeout (ms)").fill("0");
  await page.getByRole("button", { name: "Create API" }).click();
  const timeoutField = page.locator(".field.invalid", { has: page.getByLabel("Timeout (ms)") });
  await timeoutField.locator(".field-error").waitFor();
  const fieldMessage = await timeoutField.locator(".field-error").textContent();
  check(/at least 1/.test(fieldMessage), `timeout field error: ${fieldMessage}`);
  check((await page.getByLabel("Timeout (ms)").getAttribute("aria-invalid")) === "true", "aria-invalid on the field");
  await page.screenshot({ path: join(out, "api-field-error-1280.png"), fullPage: true });
  step("a 422 shows its message next to the Timeout field");

  await page.getByLabel("Timeout (ms)").fill("5000");
  await page.getByLabel("Caller authentication").selectOption("api_key");
  await page.getByLabel("Tags").fill("team-b, pci");
  await page.getByLabel("Browser origins (CORS)").fill("https://shop.example.com/");
  await page.getByRole("button", { name: "Create API" }).click();
  const corsField = page.locator(".field.invalid", { has: page.getByLabel("Browser origins (CORS)") });
  await corsField.locator(".field-error").waitFor();
  const corsMessage = await corsField.locator(".field-error").textContent();
  check(/no path: https:\/\/shop\.example\.com/.test(corsMessage), `CORS field error: ${corsMessage}`);
  await page.getByLabel("Browser origins (CORS)").fill("https://shop.example.com, https://*.shop.example.com");
  await page.getByRole("button", { name: "Create API" }).click();
  await page.waitForURL(/\/apis\/[0-9a-f-]{36}$/);
  await page.getByText(/Saved: orders-api is at version 1/).waitFor();
  step("the fixed API is created");

  // -- versions: change it, see the diff side by side, roll back ----------------------------------------
  await page.getByLabel("Timeout (ms)").fill("7000");
  await page.getByRole("button", { name: "Save changes" }).click();
  await page.getByText(/is at version 2/).waitFor();
  const diffTable = page.getByRole("region", { name: /Changes: Version 1 and Version 2/ });
  await diffTable.getByText("timeout_ms").waitFor();
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Roll back to v1" }).click();
  await page.getByRole("cell", { name: "v3 (current)" }).waitFor();
  check((await page.getByLabel("Timeout (ms)").inputValue()) === "5000", "rolled back to 5000 ms");
  step("versions: a side-by-side diff, and a rollback makes version 3");

  // -- the API list: search and layout at both sizes ------------------------------------------------------
  await page.goto(`${base}/orgs/${slug}/apis`);
  await page.getByRole("link", { name: "orders-api" }).waitFor();
  await page.getByLabel("Search by name, path or tag").fill("nothing-like-it");
  await page.getByText("No API matches.").waitFor();
  await page.getByLabel("Search by name, path or tag").fill("orders");
  await page.getByRole("link", { name: "orders-api" }).waitFor();
  await page.getByLabel("Search by name, path or tag").fill("team-b");
  await page.getByRole("link", { name: "orders-api" }).waitFor();
  const tagsShown = await page.getByRole("row", { name: /orders-api/ }).locator(".tags").textContent();
  check(tagsShown === "pci, team-b", `the list shows the API's tags, sorted: ${tagsShown}`);
  const stored = await api("GET", `/api/v1/orgs/${slug}/apis/orders-api`, token);
  check(JSON.stringify(stored.tags) === '["pci","team-b"]', `tags saved: ${JSON.stringify(stored)}`);
  check(JSON.stringify(stored.cors) === '{"origins":["https://shop.example.com","https://*.shop.example.com"]}',
    `CORS origins saved: ${JSON.stringify(stored.cors)}`);
  step("the API list searches, by tag too, and shows the tags and CORS origins the form saved");

  const views = [
    ["apis", `/orgs/${slug}/apis`],
    ["api-edit", null],
    ["connector", `/orgs/${slug}/connectors`],
    ["audit", `/orgs/${slug}/audit`],
    ["dashboard", `/orgs/${slug}/dashboard`],
    ["orgs", "/admin/orgs"],
  ];
  const apiUrl = await page.getByRole("link", { name: "orders-api" }).getAttribute("href");
  const connectorsPage = await page.goto(`${base}/orgs/${slug}/connectors`);
  check(connectorsPage.headers()["cache-control"] === "no-cache", "index.html is no-cache");
  const connectorUrl = await page.getByRole("link", { name: "orders" }).getAttribute("href");
  views[1][1] = apiUrl;
  views[2][1] = connectorUrl;
  for (const [width, height] of [[1280, 800], [390, 844]]) {
    await page.setViewportSize({ width, height });
    for (const [name, path] of views) {
      await page.goto(base + path);
      await page.locator("main h1").first().waitFor();
      await settled(page);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      const culprits = await page.evaluate(() =>
        [...document.querySelectorAll("body *")]
          .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
          .filter((el) => {
            for (let p = el.parentElement; p; p = p.parentElement) {
              if (getComputedStyle(p).overflowX !== "visible") return false; // scrolls inside its box
            }
            return true;
          })
          .slice(0, 4)
          .map((el) => `${el.tagName.toLowerCase()}.${el.className} (${Math.round(el.getBoundingClientRect().right)}px)`),
      );
      check(overflow <= 0, `${name} at ${width}x${height} overflows sideways by ${overflow}px: ${culprits.join(", ")}`);
      await page.screenshot({ path: join(out, `${name}-${width}.png`), fullPage: name !== "dashboard" });
    }
  }
  await page.setViewportSize({ width: 1280, height: 800 });
  step("no sideways overflow at 1280x800 and 390x844 (screenshots in OUT_DIR)");

  // -- the session is ended elsewhere: a log-in dialog over the page, its unsaved input kept ---------------
  await page.goto(`${base}/orgs/${slug}/consumers`);
  await page.getByRole("heading", { name: "Consumers" }).waitFor();
  await page.evaluate(async () => {
    const t = sessionStorage.getItem("junction.token");
    await fetch("/api/v1/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${t}` } });
  });
  const consumerForm = page.getByRole("form", { name: "New consumer" });
  await consumerForm.getByLabel("Name").fill("shop");
  await consumerForm.getByLabel("Name").press("Enter");
  const ended = page.getByRole("dialog", { name: "Your session was ended" });
  await ended.waitFor();
  check(new URL(page.url()).pathname === `/orgs/${slug}/consumers`, `still on the page: ${page.url()}`);
  await ended.getByLabel("Password").fill(adminPassword);
  await ended.getByLabel("Password").press("Enter");
  await ended.waitFor({ state: "detached" });
  check((await consumerForm.getByLabel("Name").inputValue()) === "shop", "the unsaved input is kept");
  step("a session ended elsewhere asks to log in again over the page, and keeps what was typed");

  // -- consumers and a key shown once ---------------------------------------------------------------------
  await consumerForm.getByLabel("Name").fill("shop");
  await consumerForm.getByLabel("Name").press("Enter");
  await page.getByRole("link", { name: "shop" }).click();
  await page.getByRole("button", { name: "Create API key" }).click();
  const key = await page.getByTestId("secret-value").textContent();
  check(key && key.length > 16, "a key is shown");
  await page.getByRole("button", { name: "Done" }).click();
  check((await page.getByTestId("secret-value").count()) === 0, "the key is gone once done");
  await page.getByRole("button", { name: "Revoke" }).waitFor();
  check((await page.getByRole("button", { name: "Revoke" }).count()) === 1, "one key listed");
  step("a consumer's new API key is shown once");

  // -- the consumer's own rate limit: a refused value under its field, then saved, shown, removed ---------
  await page.getByRole("button", { name: "Set a limit" }).click();
  const limitForm = page.getByRole("form", { name: "Own rate limit" });
  await limitForm.getByLabel("Requests").fill("0");
  await limitForm.getByLabel("Per seconds").fill("60");
  await limitForm.getByRole("button", { name: "Save limit" }).click();
  await limitForm.locator(".field.invalid", { has: page.getByLabel("Requests") }).getByText("must be at least 1").waitFor();
  await limitForm.getByLabel("Requests").fill("100");
  await limitForm.getByRole("button", { name: "Save limit" }).click();
  await page.getByText("At most 100 per 60 s").waitFor();
  await page.goto(`${base}/orgs/${slug}/consumers`);
  await page.getByRole("row", { name: /shop/ }).getByRole("cell", { name: "100 per 60 s" }).waitFor();
  await page.getByRole("link", { name: "shop" }).click();
  await page.getByRole("region", { name: "Own rate limit" }).getByRole("button", { name: "Remove" }).click();
  await page.getByText("None: the APIs' and the organisation's limits apply.").waitFor();
  step("a consumer's own rate limit: the refused value's field error, saved, listed, removed");

  // -- a connector's origins: an origin with a path refused under its field, then saved ----------------
  await page.goto(base + connectorUrl);
  const originsField = page.getByLabel("Origins (optional)");
  await originsField.fill("http://a.example/x, http://b.example:8080");
  await page.getByRole("button", { name: "Save changes" }).click();
  await page.locator(".field.invalid", { has: originsField }).getByText(/target\.origins\[0\]: must be scheme/).waitFor();
  await originsField.fill("http://a.example, http://b.example:8080");
  await page.getByRole("button", { name: "Save changes" }).click();
  await page.getByText(/Saved: orders is at version \d+/).waitFor();
  await page.reload();
  check((await page.getByLabel("Origins (optional)").inputValue()) === "http://a.example, http://b.example:8080", "the origins are saved");
  step("a connector's origins: the refused origin's field error, then saved");

  // -- audit log with a filter -------------------------------------------------------------------------
  await page.goto(`${base}/orgs/${slug}/audit`);
  await page.getByLabel("Resource type").selectOption("api");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByRole("button", { name: "Changes" }).first().waitFor();
  const types = await page.locator("tbody tr td:nth-child(4)").allTextContents();
  check(types.length >= 3 && types.every((t) => t.startsWith("api")), `audit rows: ${types}`);
  step("the audit log filters by resource type");

  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL(/\/login$/);
  step("log out");

  // -- a viewer sees no write buttons ------------------------------------------------------------------
  await page.getByLabel("E-mail").fill(viewerEmail);
  await page.getByLabel("Password").fill(viewerPassword);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(new RegExp(`/orgs/${slug}/apis$`));
  await page.getByRole("link", { name: "orders-api" }).waitFor();
  check((await page.getByRole("link", { name: "New API" }).count()) === 0, "viewer: no New API");
  check((await page.getByRole("button", { name: /Disable|Enable/ }).count()) === 0, "viewer: no enable/disable");
  await page.getByRole("link", { name: "orders-api" }).click();
  await page.getByLabel("Timeout (ms)").waitFor();
  check((await page.getByRole("button", { name: /Save|Create|Roll back/ }).count()) === 0, "viewer: no save/rollback");
  check((await page.getByLabel("Name", { exact: true }).getAttribute("readonly")) !== null, "viewer: read-only form");
  await page.goto(`${base}/orgs/${slug}/connectors`);
  await page.getByRole("link", { name: "orders" }).click();
  await page.locator(".script-editor .cm-content").waitFor();
  check((await page.locator('.script-editor .cm-content[contenteditable="false"]').count()) === 1, "viewer: read-only editor");
  check((await page.getByRole("button", { name: /Create|Save|Run/ }).count()) === 0, "viewer: no save or try");
  await page.goto(`${base}/orgs/${slug}/consumers`);
  await page.getByRole("heading", { name: "Consumers" }).waitFor();
  check((await page.getByRole("form", { name: "New consumer" }).count()) === 0, "viewer: no new consumer");
  await page.screenshot({ path: join(out, "viewer-consumers-1280.png"), fullPage: true });
  step("a viewer sees no write buttons");

  check(consoleErrors.length === 0, `page errors: ${consoleErrors.join("; ")}`);
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e.stack ?? e}`);
  for (const p of context.pages()) {
    await p.screenshot({ path: join(out, "failure.png"), fullPage: true }).catch(() => {});
    console.error(`at ${p.url()}`);
  }
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
