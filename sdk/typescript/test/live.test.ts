/**
 * Against a running control service: JUNCTION_CONTROL_URL, JUNCTION_ADMIN_EMAIL and
 * JUNCTION_ADMIN_PASSWORD (a global admin). tests/console/test_console_e2e.py sets them for its own
 * control service; without them these tests are skipped.
 */
import { describe, expect, it } from "vitest";
import { JunctionClient, JunctionError } from "../src/index";

const url = process.env.JUNCTION_CONTROL_URL;
const email = process.env.JUNCTION_ADMIN_EMAIL ?? "";
const password = process.env.JUNCTION_ADMIN_PASSWORD ?? "";
const suffix = Math.random().toString(16).slice(2, 10);

describe.skipIf(!url)("against a control service", () => {
  it("walks an organisation through its resources", async () => {
    const jc = new JunctionClient({ baseUrl: url });
    expect((await jc.healthz()) as object).toBeTruthy();
    expect(((await jc.openapi()) as { openapi: string }).openapi).toMatch(/^3\.1/);
    await jc.login(email, password);
    const org = await jc.createOrg({ slug: `tssdk-${suffix}`, name: "TS SDK" });
    expect((await jc.listOrgs()).some((o) => o.id === org.id)).toBe(true);
    const renamed = await jc.updateOrg(org.slug, { name: "TS SDK renamed" }, org.version);
    expect(renamed.name).toBe("TS SDK renamed");

    const user = await jc.createUser(org.slug, { email: `v${suffix}@example.com`, password: "password-123", role: "org_viewer" });
    expect((await jc.listUsers(org.slug)).map((u) => u.id)).toContain(user.id);

    const conn = await jc.createConnector(org.slug, {
      name: "echo",
      target: { protocol: "rest", url: "http://127.0.0.1:9/x", method: "GET" },
      script: "def transform_request(req, ctx):\n    req.headers['X-Ts'] = 'yes'\n    return req\n",
    });
    const tried = await jc.testConnector(org.slug, conn.id, { request: { method: "GET", path: "/a" } });
    expect(tried.ran).toContain("transform_request");
    const bad = await jc.tryScript(org.slug, { script: "def transform_request(r, c):\n  return (\n" }).catch((e) => e);
    expect(bad).toBeInstanceOf(JunctionError);
    expect(bad.code).toBe("script_invalid");
    expect(typeof bad.body.line).toBe("number");

    const api = await jc.createApi(org.slug, { name: "orders", methods: ["GET"], path: "/orders/{id}", connector: conn.id });
    const invalid = await jc.createApi(org.slug, { name: "x", methods: ["GET"], path: "/y", connector: conn.id,
      timeout_ms: 0 }).catch((e) => e);
    expect(invalid.status).toBe(422);
    expect(invalid.field("timeout_ms")).toMatch(/at least/);
    const page = await jc.listApis(org.slug, { limit: 10 });
    expect(page.items.map((a) => a.id)).toEqual([api.id]);
    const v2 = await jc.updateApi(org.slug, api.id, { timeout_ms: 7000 }, api.version);
    expect(v2.version).toBe(2);
    const d = await jc.diff(org.slug, "apis", api.id, 1, 2);
    expect(d.changes.map((c) => c.field)).toContain("timeout_ms");
    const back = await jc.rollback(org.slug, "apis", api.id, 1);
    expect((back as { version: number }).version).toBe(3);
    expect((await jc.listVersions(org.slug, "apis", api.id)).length).toBe(3);

    const consumer = await jc.createConsumer(org.slug, { name: "shop" });
    const key = await jc.createKey(org.slug, consumer.id);
    expect(typeof key.key).toBe("string");
    expect((await jc.listKeys(org.slug, consumer.id)).map((k) => k.id)).toContain(key.id);
    await jc.revokeKey(org.slug, consumer.id, key.id);

    const audit = await jc.audit({ org: org.slug, limit: 50 });
    expect(audit.items.length).toBeGreaterThan(3);

    await jc.deleteOrg(org.slug);
    await jc.logout();
    const after = await jc.listOrgs().catch((e) => e);
    expect(after.status).toBe(401);
  });

  it("asks whether every instance has applied the configuration, and refuses a bad wait", async () => {
    const jc = new JunctionClient({ baseUrl: url });
    await jc.login(email, password);
    const answer = await jc.configApplied(0);
    expect(typeof answer.applied).toBe("boolean");
    expect(Object.keys(answer.services).sort()).toEqual(["egress", "ingress", "processors"]);
    // Applied needs an instance of each service: with one missing, it cannot be.
    if (answer.missing.length) expect(answer.applied).toBe(false);
    const listed = await jc.instances();
    expect(Array.isArray(listed.items)).toBe(true);
    expect(listed.config_offset).toBeGreaterThanOrEqual(0);
    const bad = await jc.configApplied(-1).catch((e) => e);
    expect(bad).toBeInstanceOf(JunctionError);
    expect(bad.status).toBe(422);
    expect(bad.field("wait")).toMatch(/seconds/);
  });

  it("lists dead letters once the indexer has caught up, and refuses a bad wait", async () => {
    const jc = new JunctionClient({ baseUrl: url });
    await jc.login(email, password);
    const org = await jc.createOrg({ slug: `tswait-${suffix}`, name: "TS wait" });
    const letters = await jc.listDeadLetters(org.slug, { wait: 10 });
    expect(letters.caught_up).toBe(true);
    expect(letters.items).toEqual([]);
    expect("caught_up" in (await jc.listDeadLetters(org.slug))).toBe(false);
    expect(typeof (await jc.listLogs(org.slug, { wait: 0 })).caught_up).toBe("boolean");
    const bad = await jc.listLogs(org.slug, { wait: 61 }).catch((e) => e);
    expect(bad).toBeInstanceOf(JunctionError);
    expect(bad.status).toBe(422);
    expect(bad.field("wait")).toMatch(/seconds/);
    await jc.deleteOrg(org.slug);
  });
});
