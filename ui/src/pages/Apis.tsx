import { everyPage, JunctionError } from "@junction/sdk";
import type { Api, ApiCreate, ApiUpdate, Connector, JunctionClient } from "@junction/sdk";
import { useMemo, useState, type FormEvent } from "react";
import { Link, useLocation, useNavigate, useParams } from "react-router";
import { AppliedStatus } from "../components/Applied";
import {
  corsBody, CorsFields, corsForm, IpRestrictionFields, ipRestrictionBody, ipRestrictionForm, RateLimitFields, rateLimitBody,
  rateLimitForm, type CorsForm, type IpRestrictionForm, type RateLimitForm,
} from "../components/Policies";
import { VersionsPanel } from "../components/Versions";
import { useSession } from "../session";
import {
  ErrorMessage, Field, fieldError, Loading, num, PageHeader, Pager, TableWrap, TagsField, tagsOf, useAction, useCursor,
  useLoad,
} from "../ui";

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"] as const;
type Method = (typeof METHODS)[number];
const AUTH_MODES = ["none", "api_key", "basic", "jwt", "oauth2"] as const;
type AuthMode = (typeof AUTH_MODES)[number];
// The algorithms an API's jwt mode takes (control/bodies.py JWT_ALGORITHMS): HMAC ones with a shared secret,
// the others with the issuer's JWKS URL.
export const HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"] as const;
export const KEY_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"] as const;
const AUTH_LABELS: Record<AuthMode, string> = {
  none: "None (open)", api_key: "API key", basic: "Basic (username and password)", jwt: "JWT", oauth2: "OAuth2 token",
};

/** Every connector of the organisation (for the API form's choice), following the cursor. */
export function allConnectors(client: JunctionClient, org: string): Promise<Connector[]> {
  return everyPage((cursor) => client.listConnectors(org, { limit: 1000, cursor }), 10000);
}

export function allApis(client: JunctionClient, org: string): Promise<Api[]> {
  return everyPage((cursor) => client.listApis(org, { limit: 1000, cursor }), 10000);
}

export function ApisPage() {
  const { org = "" } = useParams();
  const { client, canWrite } = useSession();
  const [size, setSize] = useState(25);
  const [search, setSearch] = useState("");
  const paging = useCursor<string>();
  const term = search.trim().toLowerCase();
  // Without a search, one page from the API; with one, every API, filtered here (the API has no search).
  const page = useLoad(
    () => (term ? allApis(client, org).then((items) => ({ items, next_cursor: null })) : client.listApis(org, { limit: size, cursor: paging.cursor })),
    [org, size, paging.cursor, term === "", client],
  );
  const connectors = useLoad(() => allConnectors(client, org), [org, client]);
  const names = useMemo(() => new Map(connectors.data?.map((c) => [c.id, c.name])), [connectors.data]);
  const toggle = useAction();
  const items = (page.data?.items ?? []).filter(
    (a) => !term || a.name.toLowerCase().includes(term) || a.path.toLowerCase().includes(term) ||
      (a.tags ?? []).some((t) => t.toLowerCase() === term),
  );

  async function setEnabled(api: Api) {
    if (await toggle.run(() => client.updateApi(org, api.id, { enabled: !api.enabled }, api.version))) page.reload();
  }

  return (
    <section>
      <PageHeader title="APIs">
        {canWrite && <Link className="button primary" to={`/orgs/${org}/apis/new`}>New API</Link>}
      </PageHeader>
      <div className="filters">
        <Field label="Search by name, path or tag">
          {(p) => <input {...p} type="search" value={search} onChange={(e) => setSearch(e.target.value)} />}
        </Field>
        <Field label="Per page">
          {(p) => (
            <select {...p} value={size} onChange={(e) => { setSize(Number(e.target.value)); paging.reset(); }}>
              {[10, 25, 50, 100].map((n) => <option key={n} value={n}>{n}</option>)}
            </select>
          )}
        </Field>
      </div>
      <ErrorMessage error={page.error ?? toggle.error} />
      {page.loading && !page.data ? <Loading what="APIs" /> : (
        <>
          <TableWrap label="APIs">
            <thead>
              <tr><th>Name</th><th>Methods</th><th>Path</th><th>Connector</th><th>Auth</th><th>State</th><th>Version</th>
                {canWrite && <th>Actions</th>}</tr>
            </thead>
            <tbody>
              {items.map((a) => (
                <tr key={a.id}>
                  <td>
                    <Link to={`/orgs/${org}/apis/${a.id}`}>{a.name}</Link>
                    {a.tags && a.tags.length > 0 && <div className="tags">{a.tags.join(", ")}</div>}
                  </td>
                  <td>{a.methods.join(", ")}</td>
                  <td><code>{a.path}</code></td>
                  <td>{names.get(a.connector) ?? a.connector}</td>
                  <td>{a.auth?.mode}</td>
                  <td>{a.enabled ? "enabled" : <span className="warn">disabled</span>}</td>
                  <td>v{a.version}</td>
                  {canWrite && (
                    <td className="buttons">
                      <button type="button" onClick={() => setEnabled(a)}>{a.enabled ? "Disable" : "Enable"}</button>
                    </td>
                  )}
                </tr>
              ))}
              {items.length === 0 && <tr><td colSpan={8}>{term ? "No API matches." : "No APIs yet."}</td></tr>}
            </tbody>
          </TableWrap>
          {!term && (
            <Pager page={paging.page} hasNext={!!page.data?.next_cursor} onPrev={paging.prev}
              onNext={() => page.data?.next_cursor && paging.next(page.data.next_cursor)} />
          )}
        </>
      )}
    </section>
  );
}

interface ApiForm {
  name: string;
  description: string;
  tags: string;
  protocol: "rest" | "soap";
  methods: Method[];
  path: string;
  connector: string;
  timeout_ms: string;
  mode: AuthMode;
  key_in: "" | "header" | "query";
  key_name: string;
  issuer: string;
  audience: string;
  jwks_url: string;
  secret: string;
  /** jwt: the algorithms accepted; none checked: HS256 with a secret, RS256 with a JWKS URL */
  algorithms: string[];
  /** jwt, oauth2: scopes every token must hold, comma or space separated */
  scopes: string;
  leeway_s: string;
  consumer_claim: string;
  /** every mode but none: the consumers allowed (empty: all) and the header naming the consumer upstream */
  consumers: string[];
  consumer_header: string;
  rate_limit: RateLimitForm;
  /** the API's own ip_restriction (both lists empty: none), applied besides the organisation's */
  ip_restriction: IpRestrictionForm;
  /** the API's own CORS policy (no origin: none, and the organisation's applies), replacing the organisation's whole */
  cors: CorsForm;
  enabled: boolean;
}

function formOf(api?: Api): ApiForm {
  const auth = api?.auth ?? { mode: "none" };
  return {
    name: api?.name ?? "",
    description: api?.description ?? "",
    tags: (api?.tags ?? []).join(", "),
    protocol: (api?.protocol as "rest" | "soap") ?? "rest",
    methods: (api?.methods as Method[]) ?? ["GET"],
    path: api?.path ?? "",
    connector: api?.connector ?? "",
    timeout_ms: api?.timeout_ms ? String(api.timeout_ms) : "",
    mode: auth.mode ?? "none",
    key_in: auth.in ?? "",
    key_name: auth.name ?? "",
    issuer: auth.issuer ?? "",
    audience: auth.audience ?? "",
    jwks_url: auth.jwks_url ?? "",
    secret: "",
    algorithms: auth.algorithms ?? [],
    scopes: (auth.scopes ?? []).join(", "),
    leeway_s: auth.leeway_s !== undefined && auth.leeway_s !== null ? String(auth.leeway_s) : "",
    consumer_claim: auth.consumer_claim ?? "",
    consumers: auth.consumers ?? [],
    consumer_header: auth.consumer_header ?? "",
    rate_limit: rateLimitForm(api?.rate_limit),
    ip_restriction: ipRestrictionForm(api?.ip_restriction),
    cors: corsForm(api?.cors),
    enabled: api?.enabled ?? true,
  };
}


/** Scopes typed as "orders:read, orders:write" (or space separated): the list the API takes. */
export function scopesOf(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean);
}

/** The API's `auth` from the form: every setting of the chosen mode (control/bodies.py `_auth`), nothing of
 * another mode (the API refuses those). A stored jwt secret is kept by not sending one. */
export function authOf(f: ApiForm, original?: Api): Record<string, unknown> {
  const before = (original?.auth ?? {}) as Record<string, unknown>;
  const auth: Record<string, unknown> = { mode: f.mode };
  const set = (key: string, value: string) => {
    if (value.trim()) auth[key] = value.trim();
  };
  if (f.mode === "none") return auth;
  if (f.consumers.length) auth.consumers = f.consumers;
  set("consumer_header", f.consumer_header);
  if (f.mode === "api_key") {
    set("in", f.key_in);
    set("name", f.key_name);
  }
  if (f.mode === "jwt" || f.mode === "oauth2") {
    const scopes = scopesOf(f.scopes);
    if (scopes.length) auth.scopes = scopes;
  }
  if (f.mode === "jwt") {
    set("issuer", f.issuer);
    set("audience", f.audience);
    set("jwks_url", f.jwks_url);
    set("consumer_claim", f.consumer_claim);
    if (f.leeway_s.trim()) auth.leeway_s = num(f.leeway_s);
    if (f.secret) auth.secret = f.secret;
    const withSecret = !f.jwks_url.trim() && (!!f.secret || (before.mode === "jwt" && !!before.secret_set));
    auth.algorithms = f.algorithms.length ? f.algorithms : [withSecret ? "HS256" : "RS256"];
  }
  return auth;
}

function bodyOf(f: ApiForm, original?: Api): ApiCreate {
  const auth = authOf(f, original);
  const body: Record<string, unknown> = {
    name: f.name,
    tags: tagsOf(f.tags),
    protocol: f.protocol,
    methods: f.methods,
    path: f.path,
    connector: f.connector,
    auth,
    enabled: f.enabled,
    rate_limit: rateLimitBody(f.rate_limit),
    // Each whole, as the form shows it: null when empty (no rule, no policy of the API's own).
    ip_restriction: ipRestrictionBody(f.ip_restriction),
    cors: corsBody(f.cors),
  };
  if (f.description || original) body.description = f.description;
  const timeout = num(f.timeout_ms);
  if (timeout !== undefined) body.timeout_ms = timeout;
  return body as unknown as ApiCreate;
}

// The auth settings with a field of their own in the form (their errors show there).
const AUTH_FIELDS = ["in", "name", "issuer", "audience", "jwks_url", "secret", "algorithms", "consumer_claim", "leeway_s",
  "scopes", "consumer_header", "consumers"];

const CLAIMED = ["name", "description", "tags", "protocol", "methods", "path", "connector", "timeout_ms", "auth", "rate_limit",
  "ip_restriction", "cors", "enabled"];

/** The methods an API answers at its path, which are all its CORS policy may name: a SOAP API answers GET too
 * (its ?wsdl), as control/soap_api.py `routed_methods` says. */
export function routedMethods(f: Pick<ApiForm, "methods" | "protocol">): string[] {
  const methods = METHODS.filter((m) => f.methods.includes(m)) as string[];
  if (f.protocol === "soap" && !methods.includes("GET") && !methods.includes("*")) methods.push("GET");
  return methods;
}

export function ApiEditPage() {
  const { org = "", id } = useParams();
  const { client, canWrite } = useSession();
  const navigate = useNavigate();
  const location = useLocation();
  const [notice, setNotice] = useState<string | null>((location.state as { notice?: string } | null)?.notice ?? null);
  const api = useLoad(() => (id ? client.getApi(org, id) : Promise.resolve(undefined)), [org, id, client]);
  const connectors = useLoad(() => allConnectors(client, org), [org, client]);
  if (id && api.loading && !api.data) return <Loading what="the API" />;
  if (api.error) return <ErrorMessage error={api.error} />;
  return (
    <section>
      <PageHeader title={id ? `API ${api.data?.name ?? ""}` : "New API"}>
        <Link to={`/orgs/${org}/apis`}>← All APIs</Link>
      </PageHeader>
      <ErrorMessage error={connectors.error} />
      {notice && <p className="notice" role="status">{notice}</p>}
      {notice?.startsWith("Saved:") && <AppliedStatus change={notice} />}
      <ApiFormView
        key={`${id ?? "new"}-${api.data?.version ?? 0}`}
        org={org}
        api={api.data}
        connectors={connectors.data ?? []}
        readOnly={!canWrite}
        onSaved={(saved) => {
          const text = `Saved: ${saved.name} is at version ${saved.version}.`;
          if (id) {
            setNotice(text);
            api.setData(saved);
            // Opened by name (…/apis/<name>): the name may have just changed, so the page goes on by id.
            if (saved.id !== id) navigate(`/orgs/${org}/apis/${saved.id}`, { replace: true, state: { notice: text } });
          } else {
            navigate(`/orgs/${org}/apis/${saved.id}`, { state: { notice: text } });
          }
        }}
        onEdit={() => setNotice(null)}
      />
      {id && api.data && (
        <VersionsPanel org={org} kind="apis" id={api.data.id} current={api.data.version} onRolledBack={api.reload} />
      )}
    </section>
  );
}

function ApiFormView(props: {
  org: string; api?: Api; connectors: Connector[]; readOnly: boolean; onSaved: (api: Api) => void; onEdit: () => void;
}) {
  const { client, canWrite } = useSession();
  // The consumers to allow (admins only may list them; a viewer sees the stored ids).
  const consumers = useLoad(
    () => (canWrite ? everyPage((cursor) => client.listConsumers(props.org, { limit: 1000, cursor }), 10000) : Promise.resolve([])),
    [props.org, canWrite, client],
  );
  const [f, setF] = useState<ApiForm>(() => formOf(props.api));
  const save = useAction();
  const err = save.error;
  const upd = <K extends keyof ApiForm>(key: K, value: ApiForm[K]) => {
    props.onEdit();
    setF((prev) => ({ ...prev, [key]: value }));
  };

  async function submit(e: FormEvent) {
    e.preventDefault();
    const body = bodyOf(f, props.api);
    const result = await save.run(() =>
      props.api
        ? client.updateApi(props.org, props.api.id, body as ApiUpdate, props.api.version)
        : client.createApi(props.org, body),
    );
    if (result) props.onSaved(result);
  }

  const ro = props.readOnly;
  const policies = `/orgs/${props.org}/policies`;
  const taken = routedMethods(f);
  // The auth errors no auth field of the form shows.
  const authRest = err instanceof JunctionError
    ? err.fields.filter((x) => (x.field === "auth" || x.field.startsWith("auth.")) &&
      !["mode", ...AUTH_FIELDS].some((k) => x.field === `auth.${k}` || x.field.startsWith(`auth.${k}.`) || x.field.startsWith(`auth.${k}[`)))
    : [];
  return (
    <form onSubmit={submit} noValidate className="card form-grid" aria-label="API settings">
      <ErrorMessage error={err} claimed={CLAIMED} />
      <Field label="Name" error={fieldError(err, "name")} hint="letters, digits, space . _ - (up to 100)">
        {(p) => <input {...p} required readOnly={ro} value={f.name} onChange={(e) => upd("name", e.target.value)} />}
      </Field>
      <Field label="Description" error={fieldError(err, "description")} className="wide">
        {(p) => <textarea {...p} rows={2} readOnly={ro} value={f.description} onChange={(e) => upd("description", e.target.value)} />}
      </Field>
      <TagsField value={f.tags} onChange={(text) => upd("tags", text)} error={err} readOnly={ro} />
      <Field label="Protocol" error={fieldError(err, "protocol")}>
        {(p) => (
          <select {...p} disabled={ro} value={f.protocol} onChange={(e) => upd("protocol", e.target.value as "rest" | "soap")}>
            <option value="rest">REST</option>
            <option value="soap">SOAP</option>
          </select>
        )}
      </Field>
      <fieldset className={`field methods${fieldError(err, "methods") ? " invalid" : ""}`}>
        <legend>Methods</legend>
        {METHODS.map((m) => (
          <label key={m} className="check">
            <input type="checkbox" disabled={ro} checked={f.methods.includes(m)}
              onChange={(e) => upd("methods", e.target.checked ? [...f.methods, m] : f.methods.filter((x) => x !== m))} />
            {m === "*" ? "any" : m}
          </label>
        ))}
        {fieldError(err, "methods") && <div className="field-error">{fieldError(err, "methods")}</div>}
      </fieldset>
      <Field label="Path" error={fieldError(err, "path")} hint="a template such as /orders/{id}">
        {(p) => <input {...p} required readOnly={ro} value={f.path} onChange={(e) => upd("path", e.target.value)} />}
      </Field>
      <Field label="Connector" error={fieldError(err, "connector")}>
        {(p) => (
          <select {...p} required disabled={ro} value={f.connector} onChange={(e) => upd("connector", e.target.value)}>
            <option value="">— choose a connector —</option>
            {props.connectors.map((c) => <option key={c.id} value={c.id}>{c.name}</option>)}
            {f.connector && !props.connectors.some((c) => c.id === f.connector) && (
              <option value={f.connector}>{f.connector}</option>
            )}
          </select>
        )}
      </Field>
      <Field label="Timeout (ms)" error={fieldError(err, "timeout_ms")} hint="1 to 120000; empty: the default">
        {(p) => <input {...p} inputMode="numeric" readOnly={ro} value={f.timeout_ms} onChange={(e) => upd("timeout_ms", e.target.value)} />}
      </Field>
      <Field label="Caller authentication" error={fieldError(err, "auth.mode") ?? (f.mode === "none" ? fieldError(err, "auth") : undefined)}>
        {(p) => (
          <select {...p} disabled={ro} value={f.mode} onChange={(e) => upd("mode", e.target.value as AuthMode)}>
            {AUTH_MODES.map((m) => <option key={m} value={m}>{AUTH_LABELS[m]}</option>)}
          </select>
        )}
      </Field>
      {f.mode === "api_key" && (
        <>
          <Field label="Key in" error={fieldError(err, "auth.in")}>
            {(p) => (
              <select {...p} disabled={ro} value={f.key_in} onChange={(e) => upd("key_in", e.target.value as ApiForm["key_in"])}>
                <option value="">header (default)</option>
                <option value="header">header</option>
                <option value="query">query parameter</option>
              </select>
            )}
          </Field>
          <Field label="Key header or parameter name" error={fieldError(err, "auth.name")} hint="default X-API-Key">
            {(p) => <input {...p} readOnly={ro} value={f.key_name} onChange={(e) => upd("key_name", e.target.value)} />}
          </Field>
        </>
      )}
      {f.mode === "jwt" && (
        <>
          <Field label="Issuer" error={fieldError(err, "auth.issuer")}>
            {(p) => <input {...p} readOnly={ro} value={f.issuer} onChange={(e) => upd("issuer", e.target.value)} />}
          </Field>
          <Field label="Audience" error={fieldError(err, "auth.audience")}>
            {(p) => <input {...p} readOnly={ro} value={f.audience} onChange={(e) => upd("audience", e.target.value)} />}
          </Field>
          <Field label="JWKS URL" error={fieldError(err, "auth.jwks_url")} hint="https URL of the issuer's keys">
            {(p) => <input {...p} readOnly={ro} value={f.jwks_url} onChange={(e) => upd("jwks_url", e.target.value)} />}
          </Field>
          <Field label="Shared secret (HS256…)" error={fieldError(err, "auth.secret")}
            hint={props.api?.auth.secret_set ? "a secret is stored; type to replace it" : "at least 32 characters"}>
            {(p) => <input {...p} type="password" autoComplete="off" readOnly={ro} value={f.secret} onChange={(e) => upd("secret", e.target.value)} />}
          </Field>
        </>
      )}
      {f.mode === "jwt" && (
        <>
          <fieldset className={`field wide${fieldError(err, "auth.algorithms") ? " invalid" : ""}`}>
            <legend>Algorithms</legend>
            {[...HMAC_ALGORITHMS, ...KEY_ALGORITHMS].map((alg) => (
              <label key={alg} className="check">
                <input type="checkbox" disabled={ro} checked={f.algorithms.includes(alg)}
                  onChange={(e) => upd("algorithms", e.target.checked ? [...f.algorithms, alg] : f.algorithms.filter((a) => a !== alg))} />
                {alg}
              </label>
            ))}
            <div className="hint">HS* with a shared secret, the others with a JWKS URL; none checked: HS256 with a secret, RS256 with a JWKS URL</div>
            {fieldError(err, "auth.algorithms") && <div className="field-error">{fieldError(err, "auth.algorithms")}</div>}
          </fieldset>
          <Field label="Consumer claim" error={fieldError(err, "auth.consumer_claim")} hint="the claim naming the consumer (default sub)">
            {(p) => <input {...p} readOnly={ro} value={f.consumer_claim} onChange={(e) => upd("consumer_claim", e.target.value)} />}
          </Field>
          <Field label="Leeway (s)" error={fieldError(err, "auth.leeway_s")} hint="clock skew allowed, 0 to 600 (default 30)">
            {(p) => <input {...p} inputMode="numeric" readOnly={ro} value={f.leeway_s} onChange={(e) => upd("leeway_s", e.target.value)} />}
          </Field>
        </>
      )}
      {(f.mode === "jwt" || f.mode === "oauth2") && (
        <Field label="Required scopes" error={fieldError(err, "auth.scopes")} hint="every token must hold all of them: comma or space separated">
          {(p) => <input {...p} readOnly={ro} value={f.scopes} onChange={(e) => upd("scopes", e.target.value)} />}
        </Field>
      )}
      {f.mode !== "none" && (
        <>
          <Field label="Consumer header" error={fieldError(err, "auth.consumer_header")} hint="names the caller's consumer upstream (default X-Consumer-Id)">
            {(p) => <input {...p} readOnly={ro} value={f.consumer_header} onChange={(e) => upd("consumer_header", e.target.value)} />}
          </Field>
          <fieldset className={`field wide${fieldError(err, "auth.consumers") ? " invalid" : ""}`}>
            <legend>Allowed consumers</legend>
            {(consumers.data ?? []).map((c) => (
              <label key={c.id} className="check">
                <input type="checkbox" disabled={ro} checked={f.consumers.includes(c.id)}
                  onChange={(e) => upd("consumers", e.target.checked ? [...f.consumers, c.id] : f.consumers.filter((x) => x !== c.id))} />
                {c.name}
              </label>
            ))}
            {f.consumers.filter((id) => !consumers.data?.some((c) => c.id === id)).map((id) => (
              <label key={id} className="check">
                <input type="checkbox" disabled={ro} checked onChange={() => upd("consumers", f.consumers.filter((x) => x !== id))} />
                <code>{id}</code>
              </label>
            ))}
            <div className="hint">none checked: every consumer of the organisation</div>
            {fieldError(err, "auth.consumers") && <div className="field-error">{fieldError(err, "auth.consumers")}</div>}
          </fieldset>
        </>
      )}
      {f.mode !== "none" && authRest.length > 0 && (
        <div className="field-error wide">{authRest.map((x) => `${x.field}: ${x.message}`).join("; ")}</div>
      )}
      <RateLimitFields value={f.rate_limit} onChange={(v) => upd("rate_limit", v)} error={err} readOnly={ro}
        checkLabel="Limit the calls to this API" />
      <IpRestrictionFields value={f.ip_restriction} onChange={(v) => upd("ip_restriction", v)} error={err} readOnly={ro}
        note={<>Applies in addition to the organisation's IP restriction (<Link to={policies}>Caller policies</Link>): a caller must be admitted by both.</>} />
      <CorsFields value={f.cors} onChange={(v) => upd("cors", v)} error={err} readOnly={ro}
        legend="CORS policy" originsLabel="Browser origins (CORS)" methodsLegend="CORS methods"
        originsHint="pages of these origins may call the API: comma separated, e.g. https://app.example.com, https://*.example.com, or * (empty: no policy of its own, the organisation's applies; docs/cors.md)"
        methodsHint={taken.includes("*") ? "none checked: the API's own methods (it takes any)"
          : `only methods this API takes: ${taken.join(", ") || "none yet"}; none checked: all of them`}
        note={<>This API's own policy replaces the organisation's (<Link to={policies}>Caller policies</Link>) whole: nothing of it is merged in.</>} />
      <label className="check wide">
        <input type="checkbox" disabled={ro} checked={f.enabled} onChange={(e) => upd("enabled", e.target.checked)} />
        Enabled (callers may use it)
      </label>
      {!ro && (
        <div className="wide">
          <button type="submit" className="primary" disabled={save.busy}>
            {props.api ? "Save changes" : "Create API"}
          </button>
        </div>
      )}
    </form>
  );
}
