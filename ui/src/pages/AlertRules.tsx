/**
 * Alert rules (docs/alerts.md): an organisation's, or the global ones (org null, global admins only).
 * List, create, edit (a whole new version, PUT with If-Match), versions with diff and rollback. The webhook
 * secret is write-only: the form says whether one is stored, and sends one only when typed.
 */
import type { Api, Schemas } from "@junction/sdk";
import { useState, type FormEvent } from "react";
import { Link, useLocation, useNavigate, useParams } from "react-router";
import { VersionsPanel } from "../components/Versions";
import { useSession } from "../session";
import {
  ErrorMessage, Field, fieldError, Loading, num, PageHeader, Pager, TableWrap, TagsField, tagsOf, useAction, useCursor,
  useLoad,
} from "../ui";
import { allApis } from "./Apis";

type AlertRule = Schemas["AlertRule"];
type AlertRuleCreate = Schemas["AlertRuleCreate"];

export const METRICS = [
  ["error_rate", "error rate (fraction 0..1 of calls answered 4xx or 5xx)"],
  ["p95_latency_ms", "p95 latency (ms)"],
  ["p99_latency_ms", "p99 latency (ms)"],
  ["calls_per_second", "calls per second"],
  ["dead_letters_per_minute", "dead letters per minute"],
  ["circuit_open", "open circuit breakers"],
] as const;
const COMPARISONS = [">", ">=", "<", "<="] as const;

/** Where a scope's pages live: /orgs/{org}/alert-rules, or /admin/alert-rules for the global rules. */
export function alertBase(org: string | null): string {
  return org === null ? "/admin" : `/orgs/${org}`;
}

function useScope(): string | null {
  const { org } = useParams();
  return org ?? null;
}

export function AlertRulesPage() {
  const org = useScope();
  const { client, canWrite } = useSession();
  const paging = useCursor<string>();
  const page = useLoad(() => client.listAlertRules(org, { limit: 50, cursor: paging.cursor }), [org, paging.cursor, client]);
  const items = (page.data?.items ?? []) as AlertRule[];
  const base = alertBase(org);
  return (
    <section>
      <PageHeader title={org === null ? "Global alert rules" : "Alert rules"}>
        <Link to={`${base}/alerts`}>Alerts →</Link>
        {canWrite && <Link className="button primary" to={`${base}/alert-rules/new`}>New alert rule</Link>}
      </PageHeader>
      {org === null && <p className="muted">Global rules watch every organisation; only global admins see them.</p>}
      <ErrorMessage error={page.error} />
      {page.loading && !page.data ? <Loading what="alert rules" /> : (
        <>
          <TableWrap label="Alert rules">
            <thead><tr><th>Name</th><th>Condition</th><th>Window</th><th>For</th><th>Channels</th><th>State</th><th>Version</th></tr></thead>
            <tbody>
              {items.map((r) => (
                <tr key={r.id}>
                  <td><Link to={`${base}/alert-rules/${r.id}`}>{r.name}</Link></td>
                  <td><code>{r.metric} {r.comparison} {r.threshold}</code>{r.api ? " (one API)" : ""}</td>
                  <td>{r.window}</td>
                  <td>{r.duration}</td>
                  <td>{(r.channels.webhooks?.length ?? 0)} webhook(s), {(r.channels.emails?.length ?? 0)} e-mail(s)</td>
                  <td>{r.enabled ? "enabled" : <span className="warn">disabled</span>}</td>
                  <td>v{r.version}</td>
                </tr>
              ))}
              {items.length === 0 && <tr><td colSpan={7}>No alert rules yet.</td></tr>}
            </tbody>
          </TableWrap>
          <Pager page={paging.page} hasNext={!!page.data?.next_cursor} onPrev={paging.prev}
            onNext={() => page.data?.next_cursor && paging.next(page.data.next_cursor)} />
        </>
      )}
    </section>
  );
}

interface RuleForm {
  name: string;
  description: string;
  tags: string;
  metric: string;
  api: string;
  comparison: string;
  threshold: string;
  window: string;
  duration: string;
  webhooks: string;
  emails: string;
  secret: string;
  escalate: boolean;
  after: string;
  esc_webhooks: string;
  esc_emails: string;
  enabled: boolean;
}

const lines = (text: string) => text.split("\n").map((s) => s.trim()).filter(Boolean);

function formOf(r?: AlertRule): RuleForm {
  return {
    name: r?.name ?? "",
    description: r?.description ?? "",
    tags: (r?.tags ?? []).join(", "),
    metric: r?.metric ?? "error_rate",
    api: r?.api ?? "",
    comparison: r?.comparison ?? ">",
    threshold: r ? String(r.threshold) : "",
    window: r?.window ?? "5m",
    duration: r?.duration ?? "0s",
    webhooks: (r?.channels.webhooks ?? []).join("\n"),
    emails: (r?.channels.emails ?? []).join("\n"),
    secret: "",
    escalate: !!r?.escalation,
    after: r?.escalation?.after ?? "15m",
    esc_webhooks: (r?.escalation?.webhooks ?? []).join("\n"),
    esc_emails: (r?.escalation?.emails ?? []).join("\n"),
    enabled: r?.enabled ?? true,
  };
}

function bodyOf(f: RuleForm): AlertRuleCreate {
  const threshold = num(f.threshold);
  const body: Record<string, unknown> = {
    name: f.name,
    description: f.description,
    tags: tagsOf(f.tags),  // a PUT: tags left out would be removed
    metric: f.metric,
    api: f.api.trim() || null,
    comparison: f.comparison,
    threshold,
    window: f.window,
    duration: f.duration,
    channels: { webhooks: lines(f.webhooks), emails: lines(f.emails) },
    escalation: f.escalate ? { after: f.after, webhooks: lines(f.esc_webhooks), emails: lines(f.esc_emails) } : null,
    enabled: f.enabled,
  };
  if (f.secret) body.webhook_secret = f.secret;
  return body as unknown as AlertRuleCreate;
}

const CLAIMED = ["name", "description", "tags", "metric", "api", "comparison", "threshold", "window", "duration", "channels",
  "webhook_secret", "escalation", "enabled"];

export function AlertRuleEditPage() {
  const org = useScope();
  const { id } = useParams();
  const { client, canWrite } = useSession();
  const navigate = useNavigate();
  const location = useLocation();
  const [notice, setNotice] = useState<string | null>((location.state as { notice?: string } | null)?.notice ?? null);
  const rule = useLoad(() => (id ? client.getAlertRule(org, id) : Promise.resolve(undefined)), [org, id, client]);
  const apis = useLoad(() => (org === null ? Promise.resolve([] as Api[]) : allApis(client, org)), [org, client]);
  const base = alertBase(org);
  if (id && rule.loading && !rule.data) return <Loading what="the alert rule" />;
  if (rule.error) return <ErrorMessage error={rule.error} />;
  return (
    <section>
      <PageHeader title={id ? `Alert rule ${rule.data?.name ?? ""}` : org === null ? "New global alert rule" : "New alert rule"}>
        <Link to={`${base}/alert-rules`}>← All alert rules</Link>
      </PageHeader>
      <ErrorMessage error={apis.error} />
      {notice && <p className="notice" role="status">{notice}</p>}
      <RuleFormView
        key={`${id ?? "new"}-${rule.data?.version ?? 0}`}
        org={org}
        rule={rule.data}
        apis={apis.data ?? []}
        readOnly={!canWrite}
        onEdit={() => setNotice(null)}
        onSaved={(saved) => {
          const text = `Saved: ${saved.name} is at version ${saved.version}.`;
          if (id) {
            setNotice(text);
            rule.setData(saved);
            // Opened by name: the name may have just changed, so the page goes on by id.
            if (saved.id !== id) navigate(`${base}/alert-rules/${saved.id}`, { replace: true, state: { notice: text } });
          } else {
            navigate(`${base}/alert-rules/${saved.id}`, { state: { notice: text } });
          }
        }}
      />
      {id && rule.data && (
        <VersionsPanel org={org} kind="alert-rules" id={rule.data.id} current={rule.data.version}
          onRolledBack={() => { setNotice(null); rule.reload(); }} />
      )}
    </section>
  );
}

function RuleFormView(props: {
  org: string | null; rule?: AlertRule; apis: Api[]; readOnly: boolean; onSaved: (r: AlertRule) => void; onEdit: () => void;
}) {
  const { client } = useSession();
  const [f, setF] = useState<RuleForm>(() => formOf(props.rule));
  const save = useAction();
  const err = save.error;
  const ro = props.readOnly;
  const upd = <K extends keyof RuleForm>(key: K, value: RuleForm[K]) => {
    props.onEdit();
    setF((prev) => ({ ...prev, [key]: value }));
  };

  async function submit(e: FormEvent) {
    e.preventDefault();
    const body = bodyOf(f);
    const r = props.rule;
    const saved = await save.run(() =>
      r ? client.replaceAlertRule(props.org, r.id, body, r.version) : client.createAlertRule(props.org, body),
    );
    if (saved) props.onSaved(saved);
  }

  return (
    <form onSubmit={submit} noValidate className="card form-grid" aria-label="Alert rule settings">
      <ErrorMessage error={err} claimed={CLAIMED} />
      <Field label="Name" error={fieldError(err, "name")} hint="letters, digits, space . _ - (up to 100)">
        {(p) => <input {...p} required readOnly={ro} value={f.name} onChange={(e) => upd("name", e.target.value)} />}
      </Field>
      <Field label="Metric" error={fieldError(err, "metric")}>
        {(p) => (
          <select {...p} disabled={ro} value={f.metric} onChange={(e) => upd("metric", e.target.value)}>
            {METRICS.map(([m, label]) => <option key={m} value={m}>{label}</option>)}
          </select>
        )}
      </Field>
      <Field label="Comparison" error={fieldError(err, "comparison")}>
        {(p) => (
          <select {...p} disabled={ro} value={f.comparison} onChange={(e) => upd("comparison", e.target.value)}>
            {COMPARISONS.map((c) => <option key={c} value={c}>{c}</option>)}
          </select>
        )}
      </Field>
      <Field label="Threshold" error={fieldError(err, "threshold")} hint={f.metric === "error_rate" ? "a fraction, 0.05 is 5 %" : undefined}>
        {(p) => <input {...p} required inputMode="decimal" readOnly={ro} value={f.threshold} onChange={(e) => upd("threshold", e.target.value)} />}
      </Field>
      <Field label="Window" error={fieldError(err, "window")} hint="the span measured: 30s, 5m, 1h … (10s to 24h)">
        {(p) => <input {...p} readOnly={ro} value={f.window} onChange={(e) => upd("window", e.target.value)} />}
      </Field>
      <Field label="For at least" error={fieldError(err, "duration")} hint="how long it must hold before firing (0s: at once)">
        {(p) => <input {...p} readOnly={ro} value={f.duration} onChange={(e) => upd("duration", e.target.value)} />}
      </Field>
      {props.org === null ? (
        <Field label="Only the API (id)" error={fieldError(err, "api")} hint="empty: every API of every organisation">
          {(p) => <input {...p} readOnly={ro} value={f.api} onChange={(e) => upd("api", e.target.value)} />}
        </Field>
      ) : (
        <Field label="Only the API" error={fieldError(err, "api")}>
          {(p) => (
            <select {...p} disabled={ro} value={f.api} onChange={(e) => upd("api", e.target.value)}>
              <option value="">every API of the organisation</option>
              {props.apis.map((a) => <option key={a.id} value={a.id}>{a.name} ({a.path})</option>)}
              {f.api && !props.apis.some((a) => a.id === f.api) && <option value={f.api}>{f.api}</option>}
            </select>
          )}
        </Field>
      )}
      <Field label="Description" error={fieldError(err, "description")} className="wide">
        {(p) => <textarea {...p} rows={2} readOnly={ro} value={f.description} onChange={(e) => upd("description", e.target.value)} />}
      </Field>
      <TagsField value={f.tags} onChange={(text) => upd("tags", text)} error={err} readOnly={ro} />
      <Field label="Webhooks" error={fieldError(err, "channels.webhooks")} hint="one http(s) URL a line; told when it fires and resolves">
        {(p) => <textarea {...p} rows={2} readOnly={ro} value={f.webhooks} onChange={(e) => upd("webhooks", e.target.value)} />}
      </Field>
      <Field label="E-mail addresses" error={fieldError(err, "channels.emails")} hint="one a line">
        {(p) => <textarea {...p} rows={2} readOnly={ro} value={f.emails} onChange={(e) => upd("emails", e.target.value)} />}
      </Field>
      {fieldError(err, "channels") && !/channels\./.test(fieldError(err, "channels") ?? "") && (
        <div className="field-error wide">{fieldError(err, "channels")}</div>
      )}
      {!ro && (
        <Field label="Webhook signing secret" error={fieldError(err, "webhook_secret")}
          hint={props.rule?.webhook_secret_set ? "a secret is stored (never shown); type to replace it" : "16 to 256 characters; needed once the rule has a webhook"}>
          {(p) => <input {...p} type="password" autoComplete="off" value={f.secret} onChange={(e) => upd("secret", e.target.value)} />}
        </Field>
      )}
      {ro && <p className="muted">Webhook signing secret: {props.rule?.webhook_secret_set ? "stored (never shown)" : "none"}</p>}
      <fieldset className={`field wide${fieldError(err, "escalation") ? " invalid" : ""}`}>
        <legend>Escalation</legend>
        <label className="check">
          <input type="checkbox" disabled={ro} checked={f.escalate} onChange={(e) => upd("escalate", e.target.checked)} />
          Tell others once when a firing alert is not acknowledged in time
        </label>
        {f.escalate && (
          <div className="row">
            <Field label="After" error={fieldError(err, "escalation.after")} hint="15m, 1h …">
              {(p) => <input {...p} readOnly={ro} value={f.after} onChange={(e) => upd("after", e.target.value)} />}
            </Field>
            <Field label="Escalation webhooks" error={fieldError(err, "escalation.webhooks")}>
              {(p) => <textarea {...p} rows={2} readOnly={ro} value={f.esc_webhooks} onChange={(e) => upd("esc_webhooks", e.target.value)} />}
            </Field>
            <Field label="Escalation e-mails" error={fieldError(err, "escalation.emails")}>
              {(p) => <textarea {...p} rows={2} readOnly={ro} value={f.esc_emails} onChange={(e) => upd("esc_emails", e.target.value)} />}
            </Field>
          </div>
        )}
        {fieldError(err, "escalation") && !/escalation\./.test(fieldError(err, "escalation") ?? "") && (
          <div className="field-error">{fieldError(err, "escalation")}</div>
        )}
      </fieldset>
      <label className="check wide">
        <input type="checkbox" disabled={ro} checked={f.enabled} onChange={(e) => upd("enabled", e.target.checked)} />
        Enabled (evaluated)
      </label>
      {!ro && (
        <div className="wide">
          <button type="submit" className="primary" disabled={save.busy}>
            {props.rule ? "Save changes" : "Create alert rule"}
          </button>
        </div>
      )}
    </form>
  );
}
