// An API's own caller policies in the console's API form (ui/src/pages/Apis.tsx, with the shared fieldsets of
// ui/src/components/Policies.tsx): its ip_restriction and its whole CORS policy, in a real browser (Debian's
// chromium through playwright-core) against a real control service. tests/console/test_console_policies.py
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
const slug = `apipol-${suffix}`;
const password = "api-policies-password-1";
const orgAdmin = `apipoladmin-${suffix}@example.com`;
const viewer = `apipolviewer-${suffix}@example.com`;

const shot = screenshots(process.env.OUT_DIR);
const api = managementApi(base);
const same = sameJson;
const { admin, adminToken } = await orgWithAdminAndViewer(api, { adminEmail, adminPassword, slug, name: `API policies ${suffix}`, password,
  orgAdmin, viewer });
const connector = await api("POST", `/api/v1/orgs/${slug}/connectors`, adminToken,
  { name: "orders", target: { protocol: "rest", url: "http://127.0.0.1:9/orders" } });
const apis = async () => (await api("GET", `/api/v1/orgs/${slug}/apis?limit=100`, adminToken)).items;

const ORIGINS = ["https://app.example.com", "https://*.shop.example.com"];
const WANT_CORS = { origins: ORIGINS, methods: ["GET", "POST"], credentials: true, max_age_s: 600 };
const WANT_IP = { deny: ["203.0.113.0/24"] };

const { context, close } = await launch("api-policies");
let failed = false;
const pageErrors = [];
try {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(15000);
  page.on("pageerror", (e) => pageErrors.push(String(e)));

  // -- the new API's form: an IP restriction and a whole CORS policy, each saying how it goes with the org's ---
  await login(page, orgAdmin, password);
  await page.goto(`${base}/orgs/${slug}/apis/new`);
  const form = page.getByRole("form", { name: "API settings" });
  await form.getByLabel("Name").fill("orders");
  await form.getByLabel("Path").fill("/orders/{id}");
  await form.getByLabel("Connector").selectOption(connector.id);
  const apiMethods = form.getByRole("group", { name: "Methods", exact: true });
  await apiMethods.getByRole("checkbox", { name: "POST", exact: true }).check();
  const ipSet = form.getByRole("group", { name: "IP restriction" });
  const corsSet = form.getByRole("group", { name: "CORS policy" });
  const ipNote = await ipSet.locator(".policy-note").textContent();
  const corsNote = await corsSet.locator(".policy-note").textContent();
  check(/in addition to the organisation's/.test(ipNote) && /admitted by both/.test(ipNote), `the IP note: ${ipNote}`);
  check(/replaces the organisation's/.test(corsNote) && /whole/.test(corsNote), `the CORS note: ${corsNote}`);
  for (const set of [ipSet, corsSet]) {
    check((await set.getByRole("link", { name: "Caller policies" }).getAttribute("href")) === `/orgs/${slug}/policies`,
      "each note links to the organisation's caller policies");
  }
  check(/only methods this API takes: GET, POST/.test(await corsSet.locator("fieldset.methods .hint").textContent()),
    "the CORS methods' hint names the API's methods");
  step("the API form has an IP restriction and a CORS policy, each saying how it goes with the organisation's and linking to Caller policies");

  // -- a bad network: its 422 beside Denied addresses, nothing created --------------------------------------------
  await form.getByLabel("Denied addresses").fill("203.0.113.0/24\n10.0.0.0/33");
  await form.getByLabel("Browser origins (CORS)").fill(ORIGINS.join(", "));
  const corsMethods = form.getByRole("group", { name: "CORS methods" });
  await corsMethods.getByRole("checkbox", { name: "POST", exact: true }).check();
  await corsMethods.getByRole("checkbox", { name: "GET", exact: true }).check();
  await form.getByRole("checkbox", { name: /^Credentials/ }).check();
  await form.getByLabel("Max age (s)").fill("600");
  await form.getByRole("button", { name: "Create API" }).click();
  const denyField = form.locator("div.field.invalid", { has: page.getByLabel("Denied addresses") });
  await denyField.locator(".field-error").waitFor();
  const denyMessage = (await denyField.locator(".field-error").textContent()).trim();
  check(denyMessage.startsWith("10.0.0.0/33: "), `the field error names the bad network: ${denyMessage}`);
  check((await form.getByLabel("Denied addresses").getAttribute("aria-invalid")) === "true", "aria-invalid on Denied addresses");
  check((await form.getByLabel("Allowed addresses").getAttribute("aria-invalid")) === null, "Allowed addresses not marked");
  const alert = (await page.getByRole("alert").textContent()) ?? "";
  check(alert.includes("Please correct the fields marked below") && !alert.includes("ip_restriction"),
    `the message at the top leaves the field to its input: ${alert}`);
  check((await apis()).length === 0, "nothing created");
  await shot(page, "api-policies-network-error-1280");
  step(`a 422 for 10.0.0.0/33 shows beside Denied addresses and nothing is created: ${denyMessage}`);

  // -- a CORS method the API does not take: its 422 beside the CORS methods, nothing created ----------------------
  await form.getByLabel("Denied addresses").fill("203.0.113.0/24");
  // Checked out of order (POST, DELETE, GET): the 422's cors.methods[i] indexes the list as sent (GET, POST, DELETE).
  await corsMethods.getByRole("checkbox", { name: "GET", exact: true }).uncheck();
  await corsMethods.getByRole("checkbox", { name: "DELETE", exact: true }).check();
  await corsMethods.getByRole("checkbox", { name: "GET", exact: true }).check();
  await form.getByRole("button", { name: "Create API" }).click();
  await corsMethods.locator(".field-error").waitFor();
  const methodMessage = (await corsMethods.locator(".field-error").textContent()).trim();
  check(/^DELETE: is not a method of this API \(GET, POST\)/.test(methodMessage), `the CORS methods' error: ${methodMessage}`);
  check(await corsMethods.evaluate((el) => el.classList.contains("invalid")), "the CORS methods are marked invalid");
  check((await corsMethods.getByRole("checkbox", { name: "DELETE", exact: true }).getAttribute("aria-invalid")) === "true",
    "the refused method's box is marked");
  check((await corsMethods.getByRole("checkbox", { name: "POST", exact: true }).getAttribute("aria-invalid")) === null,
    "a method the API takes is not marked");
  check((await form.getByLabel("Denied addresses").getAttribute("aria-invalid")) === null, "the fixed network is no longer marked");
  check((await apis()).length === 0, "still nothing created");
  await shot(page, "api-policies-method-error-1280");
  step(`a CORS method the API does not take shows its 422 beside the CORS methods and nothing is created: ${methodMessage}`);

  // -- fixed: created, and the API answers exactly the rule and the policy of the form -------------------------------
  await corsMethods.getByRole("checkbox", { name: "DELETE", exact: true }).uncheck();
  await form.getByRole("button", { name: "Create API" }).click();
  await page.getByRole("status").filter({ hasText: /^Saved: orders is at version 1/ }).waitFor();
  const [created] = await apis();
  const stored = () => api("GET", `/api/v1/orgs/${slug}/apis/${created.id}`, adminToken);
  let now = await stored();
  check(same(now.ip_restriction, WANT_IP), `ip_restriction: ${JSON.stringify(now.ip_restriction)}`);
  check(same(now.cors, WANT_CORS), `cors: ${JSON.stringify(now.cors)}`);
  check((await form.getByLabel("Denied addresses").inputValue()) === "203.0.113.0/24", "the form shows the saved deny list");
  check(await corsMethods.getByRole("checkbox", { name: "POST", exact: true }).isChecked(), "and the saved CORS methods");
  step("ip_restriction and cors saved: GET /api/v1/orgs/{org}/apis/{id} returns exactly them");

  // -- editing: a refused network saves nothing (the version stays), a stale save is a 412 -------------------------
  await form.getByLabel("Allowed addresses").fill("10.0.0.0/33");
  await form.getByRole("button", { name: "Save changes" }).click();
  await form.locator("div.field.invalid", { has: page.getByLabel("Allowed addresses") }).getByText(/^10\.0\.0\.0\/33: /).waitFor();
  now = await stored();
  check(now.version === 1 && same(now.ip_restriction, WANT_IP), `the refused edit saved nothing: ${JSON.stringify(now)}`);
  await form.getByLabel("Allowed addresses").fill("");
  await api("PATCH", `/api/v1/orgs/${slug}/apis/${created.id}`, admin, { description: "changed elsewhere" });
  await form.getByLabel("Max age (s)").fill("60");
  await form.getByRole("button", { name: "Save changes" }).click();
  await page.getByRole("alert").filter({ hasText: "Someone changed this" }).waitFor();
  now = await stored();
  check(now.version === 2 && now.cors.max_age_s === 600, `the stale save (If-Match 1) changed nothing: ${JSON.stringify(now)}`);
  step("editing: a refused network saves nothing, and a save over someone's newer version answers 412");

  // -- clearing both: null is sent, and the API has neither ---------------------------------------------------------
  await page.reload();
  await form.getByLabel("Denied addresses").waitFor();
  check((await form.getByLabel("Max age (s)").inputValue()) === "600", "the reloaded form shows the stored policy");
  const sent = [];
  page.on("request", (r) => { if (r.method() === "PATCH" && r.url().includes(`/apis/${created.id}`)) sent.push(r.postDataJSON()); });
  await form.getByLabel("Denied addresses").fill("");
  await form.getByLabel("Browser origins (CORS)").fill("");
  await form.getByRole("button", { name: "Save changes" }).click();
  await page.getByRole("status").filter({ hasText: /^Saved: orders is at version 3/ }).waitFor();
  check(sent.length === 1 && sent[0].ip_restriction === null && sent[0].cors === null, `the PATCH sent: ${JSON.stringify(sent)}`);
  now = await stored();
  check(now.ip_restriction === null && now.cors === null, `cleared: ${JSON.stringify(now)}`);
  check((await corsMethods.getByRole("checkbox", { name: "GET", exact: true }).isChecked()) === false, "no CORS method is left checked");
  step("clearing both sends null: GET /api/v1/orgs/{org}/apis/{id} has no ip_restriction and no cors");

  // -- the session expires while editing: the log-in dialog over the page, the edits kept and saved after ---------
  const later = await context.newPage();
  later.setDefaultTimeout(15000);
  later.on("pageerror", (e) => pageErrors.push(String(e)));
  await later.clock.install({ time: new Date() });
  await login(later, orgAdmin, password);
  await later.goto(`${base}/orgs/${slug}/apis/${created.id}`);
  const laterForm = later.getByRole("form", { name: "API settings" });
  await laterForm.getByLabel("Denied addresses").fill("203.0.113.0/24");
  await laterForm.getByLabel("Browser origins (CORS)").fill("https://app.example.com");
  await laterForm.getByRole("group", { name: "CORS methods" }).getByRole("checkbox", { name: "GET", exact: true }).check();
  const exp = JSON.parse(atob((await later.evaluate(() => sessionStorage.getItem("junction.token"))).split(".")[1])).exp;
  await later.clock.fastForward(exp * 1000 + 1000 - (await later.evaluate(() => Date.now())));
  const expired = later.getByRole("dialog", { name: "Your session has expired" });
  await expired.waitFor();
  await later.clock.setSystemTime(new Date()); // the browser's clock back in step with the server's
  await expired.getByLabel("Password").fill(password);
  await expired.getByLabel("Password").press("Enter");
  await expired.waitFor({ state: "detached" });
  check(new URL(later.url()).pathname === `/orgs/${slug}/apis/${created.id}`, `still on the page: ${later.url()}`);
  check((await laterForm.getByLabel("Denied addresses").inputValue()) === "203.0.113.0/24", "the unsaved deny list is kept");
  await laterForm.getByRole("button", { name: "Save changes" }).click();
  await later.getByRole("status").filter({ hasText: /^Saved:/ }).waitFor();
  now = await stored();
  check(same(now.ip_restriction, WANT_IP) && same(now.cors, { origins: ["https://app.example.com"], methods: ["GET"] }),
    `saved after the log-in: ${JSON.stringify(now)}`);
  await later.close();
  step("the session expires while editing: the log-in dialog over the page, the edits kept and saved after");

  // -- a viewer reads them, read-only -------------------------------------------------------------------------------
  const reader = await context.newPage();
  reader.setDefaultTimeout(15000);
  reader.on("pageerror", (e) => pageErrors.push(String(e)));
  await login(reader, viewer, password);
  await reader.goto(`${base}/orgs/${slug}/apis/${created.id}`);
  const viewForm = reader.getByRole("form", { name: "API settings" });
  const deny = viewForm.getByLabel("Denied addresses");
  await deny.waitFor();
  check((await deny.inputValue()) === "203.0.113.0/24" && !(await deny.isEditable()), "the viewer sees the deny list, read-only");
  check(!(await viewForm.getByLabel("Browser origins (CORS)").isEditable()), "the origins are read-only");
  check(await viewForm.getByRole("group", { name: "CORS methods" }).getByRole("checkbox", { name: "GET", exact: true }).isDisabled(),
    "the CORS methods are read-only");
  await reader.setViewportSize({ width: 390, height: 844 });
  check(await reader.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "no sideways overflow at 390 px");
  await shot(reader, "api-policies-viewer-390");
  await viewForm.getByRole("group", { name: "IP restriction" }).getByRole("link", { name: "Caller policies" }).click();
  await reader.waitForURL(new RegExp(`/orgs/${slug}/policies$`));
  await reader.getByRole("heading", { name: "Caller policies" }).waitFor();
  step("a viewer sees the API's policies read-only, and the note's link opens the organisation's Caller policies");

  check(pageErrors.length === 0, `page errors: ${pageErrors.join("; ")}`);
} catch (e) {
  failed = true;
  console.log(`FAILED: ${e?.stack ?? e}`);
} finally {
  await close();
}
process.exit(failed ? 1 : 0);
