// An organisation's caller policies in the console (ui/src/pages/Orgs.tsx, OrgPoliciesPage), in a real browser
// (Debian's chromium through playwright-core) against a real control service. tests/console/test_console_policies.py
// runs it from ui/ (so that playwright-core is found) with
//   CONSOLE_URL, ADMIN_EMAIL, ADMIN_PASSWORD, CHROMIUM, OUT_DIR (screenshots)   as for ui/e2e/console.e2e.mjs
// It prints one "ok <step>" line per step and exits 1 at the first failure.
import { check, launch, login as loginAt, managementApi, orgWithAdminAndViewer, sameJson, screenshots, step }
  from "../../ui/e2e/support.mjs";

const base = process.env.CONSOLE_URL ?? "http://127.0.0.1:8081";
const login = (page, email, pass) => loginAt(page, base, email, pass);
const adminEmail = process.env.ADMIN_EMAIL;
const adminPassword = process.env.ADMIN_PASSWORD;
const suffix = Math.random().toString(16).slice(2, 8);
const slug = `pol-${suffix}`;
const password = "policies-password-1";
const orgAdmin = `poladmin-${suffix}@example.com`;
const viewer = `polviewer-${suffix}@example.com`;

const shot = screenshots(process.env.OUT_DIR);
const api = managementApi(base);
const same = sameJson;
const { admin, adminToken } = await orgWithAdminAndViewer(api, { adminEmail, adminPassword, slug, name: `Policies ${suffix}`, password,
  orgAdmin, viewer });
const stored = () => api("GET", `/api/v1/orgs/${slug}`, adminToken);

const { context, close } = await launch("org-policies");
let failed = false;
const pageErrors = [];
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15000);
  page.on("pageerror", (e) => pageErrors.push(String(e)));

  // -- an org admin opens the organisation's caller policies from the side navigation -------------------
  await login(page, orgAdmin, password);
  await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Caller policies" }).click();
  await page.waitForURL(new RegExp(`/orgs/${slug}/policies$`));
  await page.getByRole("heading", { name: "Caller policies" }).waitFor();
  const form = page.getByRole("form", { name: "Caller policies" });
  check(!(await form.getByLabel("Allowed addresses").isDisabled()) &&
    (await form.getByLabel("Allowed addresses").getAttribute("readonly")) === null, "the org admin's form is editable");
  step("an org admin opens the caller policies from the navigation");

  // -- a bad network: the 422's message beside the Allowed addresses, nothing saved ---------------------------
  await form.getByLabel("Allowed addresses").fill("127.0.0.1\n10.0.0.0/33");
  await form.getByLabel("Denied addresses").fill("10.6.0.0/16");
  await form.getByLabel("Origins", { exact: true }).fill("https://app.example.com, https://*.shop.example.com");
  await form.getByRole("checkbox", { name: "GET", exact: true }).check();
  await form.getByRole("checkbox", { name: "POST", exact: true }).check();
  await form.getByLabel("Exposed headers").fill("X-Correlation-Id");
  await form.getByLabel("Max age (s)").fill("600");
  await form.getByRole("checkbox", { name: /^Credentials/ }).check();
  await form.getByRole("button", { name: "Save policies" }).click();
  const allowField = form.locator("div.field.invalid", { has: page.getByLabel("Allowed addresses") });
  await allowField.locator(".field-error").waitFor();
  const allowMessage = await allowField.locator(".field-error").textContent();
  check(allowMessage.includes("10.0.0.0/33"), `the field error names the bad entry: ${allowMessage}`);
  check((await form.getByLabel("Allowed addresses").getAttribute("aria-invalid")) === "true", "aria-invalid on Allowed addresses");
  check((await form.getByLabel("Denied addresses").getAttribute("aria-invalid")) === null, "Denied addresses not marked");
  await shot(page, "org-policies-field-error-1280");
  const unsaved = await stored();
  check(unsaved.ip_restriction === null && unsaved.cors === null && unsaved.version === 1, `nothing saved: ${JSON.stringify(unsaved)}`);
  step(`a 422 for 10.0.0.0/33 shows beside Allowed addresses: ${allowMessage.trim()}`);

  // -- fixed and saved: the API answers the policies, and the page its new version -------------------------
  await form.getByLabel("Allowed addresses").fill("10.0.0.0/8\n127.0.0.1");
  await form.getByRole("button", { name: "Save policies" }).click();
  await page.getByRole("status").filter({ hasText: /^Saved:/ }).waitFor();
  const saved = await stored();
  const notice = await page.getByRole("status").filter({ hasText: /^Saved:/ }).textContent();
  check(notice.includes(`at version ${saved.version}`) && saved.version === 2, `notice ${notice} for ${JSON.stringify(saved)}`);
  check(same(saved.ip_restriction, { allow: ["10.0.0.0/8", "127.0.0.1"], deny: ["10.6.0.0/16"] }),
    `ip_restriction: ${JSON.stringify(saved.ip_restriction)}`);
  check(same(saved.cors, { origins: ["https://app.example.com", "https://*.shop.example.com"], methods: ["GET", "POST"],
    exposed_headers: ["X-Correlation-Id"], credentials: true, max_age_s: 600 }), `cors: ${JSON.stringify(saved.cors)}`);
  check(saved.rate_limit === null, `rate_limit untouched: ${JSON.stringify(saved.rate_limit)}`);
  check((await page.getByRole("alert").count()) === 0, "no error after the save");
  step("ip_restriction and cors saved: GET /api/v1/orgs/{org} returns them, the page says version 2");

  // -- someone else (a global admin, in a tab of their own) changes it: the org admin's save is a 412 ------------
  const other = await context.newPage(); // a tab of its own: its own sessionStorage, so its own session
  other.setDefaultTimeout(15000);
  await login(other, adminEmail, adminPassword);
  await other.goto(`${base}/admin/orgs`);
  await other.getByRole("row", { name: new RegExp(slug) }).getByRole("link", { name: "Caller policies", exact: true }).click();
  await other.waitForURL(new RegExp(`/orgs/${slug}/policies$`));
  const otherForm = other.getByRole("form", { name: "Caller policies" });
  check((await otherForm.getByLabel("Denied addresses").inputValue()) === "10.6.0.0/16", "the global admin sees the saved deny list");
  await otherForm.getByRole("checkbox", { name: /^Limit the calls/ }).check();
  await otherForm.getByLabel("Requests").fill("50");
  await otherForm.getByLabel("Per seconds").fill("60");
  await otherForm.getByLabel("For each").selectOption("ip");
  await otherForm.getByRole("button", { name: "Save policies" }).click();
  await other.getByRole("status").filter({ hasText: /^Saved:/ }).waitFor();
  const theirs = await stored();
  check(same(theirs.rate_limit, { requests: 50, per_seconds: 60, by: "ip" }) && theirs.version === 3, `their change: ${JSON.stringify(theirs)}`);
  await other.close();
  step("a global admin edits the same policies (a rate limit), version 3");

  await page.bringToFront();
  await form.getByLabel("Denied addresses").fill("10.6.0.0/16\n192.0.2.0/24");
  await form.getByRole("button", { name: "Save policies" }).click();
  await page.getByRole("alert").filter({ hasText: "Someone changed this" }).waitFor();
  check((await page.getByRole("alert").textContent()).includes("412"), "the message shows the 412");
  check(same((await stored()).ip_restriction.deny, ["10.6.0.0/16"]), "the stale save changed nothing");
  await form.getByRole("button", { name: /^Reload the organisation/ }).click();
  await page.getByRole("status").filter({ hasText: "Reloaded" }).waitFor();
  check((await form.getByLabel("Requests").inputValue()) === "50", "after the reload the form shows their rate limit");
  check((await form.getByLabel("Denied addresses").inputValue()) === "10.6.0.0/16", "after the reload the deny list is the stored one");
  check((await page.getByRole("alert").count()) === 0, "no error after the reload");
  step("a stale save answers 412, says someone changed it, and Reload shows their version");

  // -- remove each: null is sent, the API has none, the other policies stay ----------------------------------------
  await form.getByRole("button", { name: "Remove the IP restriction" }).click();
  await page.getByRole("status").filter({ hasText: /IP restriction is removed/ }).waitFor();
  let now = await stored();
  check(now.ip_restriction === null && now.cors !== null && now.rate_limit !== null, `IP restriction removed: ${JSON.stringify(now)}`);
  check((await form.getByLabel("Allowed addresses").inputValue()) === "", "the allow list is emptied");
  await form.getByRole("button", { name: "Remove the CORS policy" }).click();
  await page.getByRole("status").filter({ hasText: /CORS policy is removed/ }).waitFor();
  now = await stored();
  check(now.ip_restriction === null && now.cors === null && now.rate_limit !== null, `CORS removed: ${JSON.stringify(now)}`);
  check((await page.getByRole("status").filter({ hasText: /^Saved:/ }).textContent()).includes(`version ${now.version}`),
    `the page shows version ${now.version}`);
  check((await form.getByRole("button", { name: /^Remove the (IP|CORS)/ }).count()) === 0, "no Remove for what is not set");
  step("Remove sends null: GET /api/v1/orgs/{org} has no ip_restriction and no cors, the rate limit stays");

  // -- the API form's rate limit is the same shared fieldset: a refused value beside its field, then saved ---------
  const connector = await api("POST", `/api/v1/orgs/${slug}/connectors`, adminToken,
    { name: "orders", target: { protocol: "rest", url: "http://127.0.0.1:9/orders" } });
  await api("POST", `/api/v1/orgs/${slug}/apis`, adminToken, { name: "limited", methods: ["GET"], path: "/limited", connector: connector.id });
  await page.goto(`${base}/orgs/${slug}/apis/limited`);
  const apiForm = page.getByRole("form", { name: "API settings" });
  await apiForm.getByRole("checkbox", { name: "Limit the calls to this API" }).check();
  await apiForm.getByLabel("Requests").fill("0");
  await apiForm.getByLabel("Per seconds").fill("60");
  await apiForm.getByLabel("For each").selectOption("api");
  await apiForm.getByRole("button", { name: "Save changes" }).click();
  await apiForm.locator("div.field.invalid", { has: page.getByLabel("Requests") }).getByText("must be at least 1").waitFor();
  await apiForm.getByLabel("Requests").fill("5");
  await apiForm.getByRole("button", { name: "Save changes" }).click();
  await page.getByText(/Saved: limited is at version 2/).waitFor();
  const limited = await api("GET", `/api/v1/orgs/${slug}/apis/limited`, adminToken);
  check(same(limited.rate_limit, { requests: 5, per_seconds: 60, by: "api" }), `the API's rate limit: ${JSON.stringify(limited.rate_limit)}`);
  step("the API form's rate limit (the shared fieldset) shows a 422 beside Requests, then saves");

  // -- a viewer reads them, read-only: no save, no remove, nothing to type in ---------------------------------------
  await api("PATCH", `/api/v1/orgs/${slug}`, adminToken, {
    ip_restriction: { allow: ["10.0.0.0/8"] }, cors: { origins: ["https://app.example.com"], credentials: true } });
  const reader = await context.newPage();
  reader.setDefaultTimeout(15000);
  reader.on("pageerror", (e) => pageErrors.push(String(e)));
  await login(reader, viewer, password);
  await reader.goto(`${base}/orgs/${slug}/policies`);
  const viewForm = reader.getByRole("form", { name: "Caller policies" });
  await viewForm.waitFor();
  const allow = viewForm.getByLabel("Allowed addresses");
  check((await allow.inputValue()) === "10.0.0.0/8", "the viewer sees the allow list");
  check((await viewForm.getByLabel("Origins", { exact: true }).inputValue()) === "https://app.example.com", "the viewer sees the origins");
  check((await allow.getAttribute("readonly")) !== null && !(await allow.isEditable()), "Allowed addresses is read-only");
  check(!(await viewForm.getByLabel("Origins", { exact: true }).isEditable()), "Origins is read-only");
  check(!(await viewForm.getByLabel("Requests").isEditable()) && (await viewForm.getByLabel("For each").isDisabled()), "the rate limit is read-only");
  check(await viewForm.getByRole("checkbox", { name: /^Credentials/ }).isDisabled(), "the credentials box is disabled");
  check(await viewForm.getByRole("checkbox", { name: /^Credentials/ }).isChecked(), "and checked");
  check((await reader.getByRole("button", { name: /Save|Remove/ }).count()) === 0, "a viewer has no Save or Remove");
  check((await reader.getByRole("alert").count()) === 0, "a viewer sees no error");
  await shot(reader, "org-policies-viewer-1280");
  await reader.setViewportSize({ width: 390, height: 800 });
  check(await reader.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "no sideways overflow at 390 px");
  await shot(reader, "org-policies-viewer-390");
  step("a viewer sees the policies read-only, with no Save or Remove");

  // -- the session expires while editing: the log-in dialog opens over the page, and the edits are kept -----------
  const later = await context.newPage();
  later.setDefaultTimeout(15000);
  later.on("pageerror", (e) => pageErrors.push(String(e)));
  await later.clock.install({ time: new Date() });
  await login(later, orgAdmin, password);
  await later.goto(`${base}/orgs/${slug}/policies`);
  const laterForm = later.getByRole("form", { name: "Caller policies" });
  await laterForm.getByLabel("Denied addresses").fill("198.51.100.0/24");
  const exp = JSON.parse(atob((await later.evaluate(() => sessionStorage.getItem("junction.token"))).split(".")[1])).exp;
  await later.clock.fastForward(exp * 1000 + 1000 - (await later.evaluate(() => Date.now())));
  const expired = later.getByRole("dialog", { name: "Your session has expired" });
  await expired.waitFor();
  await later.clock.setSystemTime(new Date()); // the browser's clock back in step with the server's
  await expired.getByLabel("Password").fill(password);
  await expired.getByLabel("Password").press("Enter");
  await expired.waitFor({ state: "detached" });
  check(new URL(later.url()).pathname === `/orgs/${slug}/policies`, `still on the page: ${later.url()}`);
  check((await laterForm.getByLabel("Denied addresses").inputValue()) === "198.51.100.0/24", "the unsaved deny list is kept");
  await laterForm.getByRole("button", { name: "Save policies" }).click();
  await later.getByRole("status").filter({ hasText: /^Saved:/ }).waitFor();
  const kept = await stored();
  check(same(kept.ip_restriction, { allow: ["10.0.0.0/8"], deny: ["198.51.100.0/24"] }), `saved after the log-in: ${JSON.stringify(kept)}`);
  step("the session expires while editing: the log-in dialog over the page, the edit kept and saved after");

  check(pageErrors.length === 0, `page errors: ${pageErrors.join("; ")}`);
} catch (e) {
  failed = true;
  console.log(`FAILED: ${e?.stack ?? e}`);
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
