import {
  JunctionError, type Connector, type ConnectorCreate, type ConnectorTestRequest, type ConnectorTestResult,
  type ConnectorUpdate,
} from "@junction/sdk";
import { lazy, Suspense, useEffect, useId, useState, type FormEvent } from "react";
import { Link, useLocation, useNavigate, useParams } from "react-router";
import { AppliedStatus } from "../components/Applied";
import { VersionsPanel } from "../components/Versions";
import { useSession } from "../session";
import {
  ErrorMessage, Field, fieldError, Json, Loading, PageHeader, Pager, TableWrap, formatTime, parseJsonField, useAction,
  useCursor, useLoad, TagsField, tagsOf,
} from "../ui";

// CodeMirror is most of the console's code and only this page needs it: it loads in a chunk of its own.
const ScriptEditor = lazy(() => import("../components/ScriptEditor").then((m) => ({ default: m.ScriptEditor })));

const TARGET_METHODS = ["", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"];
const TRY_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] as const;

export const SAMPLE_SCRIPT = `def transform_request(request, ctx):
    # request.method, request.path, request.path_params, request.query, request.headers, request.body
    request.headers["X-Via"] = "junction"
    return request


def transform_response(response, ctx):
    return response
`;

export function ConnectorsPage() {
  const { org = "" } = useParams();
  const { client, canWrite } = useSession();
  const paging = useCursor<string>();
  const page = useLoad(() => client.listConnectors(org, { limit: 50, cursor: paging.cursor }), [org, paging.cursor, client]);
  return (
    <section>
      <PageHeader title="Connectors">
        {canWrite && <Link className="button primary" to={`/orgs/${org}/connectors/new`}>New connector</Link>}
      </PageHeader>
      <ErrorMessage error={page.error} />
      {page.loading && !page.data ? <Loading what="connectors" /> : (
        <>
          <TableWrap label="Connectors">
            <thead><tr><th>Name</th><th>Protocol</th><th>Target</th><th>Script</th><th>Version</th><th>Updated</th></tr></thead>
            <tbody>
              {page.data?.items.map((c) => (
                <tr key={c.id}>
                  <td><Link to={`/orgs/${org}/connectors/${c.id}`}>{c.name}</Link></td>
                  <td>{c.target.protocol}</td>
                  <td><code className="break">{c.target.url}</code></td>
                  <td>{c.script ? "yes" : "—"}</td>
                  <td>v{c.version}</td>
                  <td>{formatTime(c.updated_at)}</td>
                </tr>
              ))}
              {page.data?.items.length === 0 && <tr><td colSpan={6}>No connectors yet.</td></tr>}
            </tbody>
          </TableWrap>
          <Pager page={paging.page} hasNext={!!page.data?.next_cursor} onPrev={paging.prev}
            onNext={() => page.data?.next_cursor && paging.next(page.data.next_cursor)} />
        </>
      )}
    </section>
  );
}

interface ConnectorForm {
  name: string;
  description: string;
  tags: string;
  protocol: "rest" | "soap";
  url: string;
  origins: string;
  method: string;
  headers: string;
  settings: string;
  script: string;
}

function formOf(c?: Connector): ConnectorForm {
  const target = (c?.target ?? {}) as Record<string, unknown>;
  return {
    name: c?.name ?? "",
    description: c?.description ?? "",
    tags: (c?.tags ?? []).join(", "),
    protocol: (target.protocol as "rest" | "soap") ?? "rest",
    url: (target.url as string) ?? "",
    origins: (c?.target.origins ?? []).join(", "),
    method: (target.method as string) ?? "",
    headers: target.headers ? JSON.stringify(target.headers, null, 2) : "",
    settings: c?.settings && Object.keys(c.settings).length ? JSON.stringify(c.settings, null, 2) : "",
    script: c ? c.script ?? "" : SAMPLE_SCRIPT,
  };
}

/** The error line of a 422 script_invalid, or of a try-out whose script failed. */
function scriptLine(error: unknown): { line: number; message: string } | null {
  if (error instanceof JunctionError && error.code === "script_invalid" && typeof error.body.line === "number") {
    return { line: error.body.line, message: String(error.body.message ?? error.message) };
  }
  return null;
}

export function ConnectorEditPage() {
  const { org = "", id } = useParams();
  const { client, canWrite } = useSession();
  const navigate = useNavigate();
  const location = useLocation();
  const [notice, setNotice] = useState<string | null>((location.state as { notice?: string } | null)?.notice ?? null);
  const connector = useLoad(() => (id ? client.getConnector(org, id) : Promise.resolve(undefined)), [org, id, client]);
  if (id && connector.loading && !connector.data) return <Loading what="the connector" />;
  if (connector.error) return <ErrorMessage error={connector.error} />;
  return (
    <section>
      <PageHeader title={id ? `Connector ${connector.data?.name ?? ""}` : "New connector"}>
        <Link to={`/orgs/${org}/connectors`}>← All connectors</Link>
      </PageHeader>
      {notice && <p className="notice" role="status">{notice}</p>}
      {notice?.startsWith("Saved:") && <AppliedStatus change={notice} />}
      <ConnectorFormView
        key={`${id ?? "new"}-${connector.data?.version ?? 0}`}
        org={org}
        connector={connector.data}
        readOnly={!canWrite}
        onEdit={() => setNotice(null)}
        onSaved={(saved) => {
          const text = `Saved: ${saved.name} is at version ${saved.version}.`;
          if (id) {
            setNotice(text);
            connector.setData(saved);
            // Opened by name (…/connectors/<name>): the name may have just changed, so the page goes on by id.
            if (saved.id !== id) navigate(`/orgs/${org}/connectors/${saved.id}`, { replace: true, state: { notice: text } });
          } else {
            navigate(`/orgs/${org}/connectors/${saved.id}`, { state: { notice: text } });
          }
        }}
      />
      {id && connector.data && (
        <VersionsPanel org={org} kind="connectors" id={connector.data.id} current={connector.data.version} onRolledBack={connector.reload} />
      )}
    </section>
  );
}

const CLAIMED = ["name", "description", "tags", "target", "settings", "script"];

function ConnectorFormView(props: {
  org: string; connector?: Connector; readOnly: boolean; onSaved: (c: Connector) => void; onEdit: () => void;
}) {
  const { client } = useSession();
  const [f, setF] = useState<ConnectorForm>(() => formOf(props.connector));
  const [localError, setLocalError] = useState<string | null>(null);
  const [statusError, setStatusError] = useState<string | null>(null);
  const [tryLine, setTryLine] = useState<{ line: number; message: string } | null>(null);
  const save = useAction();
  const err = save.error;
  const editorLabel = useId();
  const editorError = useId();
  const upd = <K extends keyof ConnectorForm>(key: K, value: ConnectorForm[K]) => {
    props.onEdit();
    setF((prev) => ({ ...prev, [key]: value }));
  };
  const ro = props.readOnly;

  async function submit(e: FormEvent) {
    e.preventDefault();
    setLocalError(null);
    setTryLine(null);
    let headers: unknown;
    let settings: unknown;
    try {
      headers = parseJsonField(f.headers, "Headers");
      settings = parseJsonField(f.settings, "Settings");
    } catch (x) {
      setLocalError((x as Error).message);
      return;
    }
    // Target keys the form does not show (SOAP's WSDL, TLS, auth…) are kept as they were.
    const target: Record<string, unknown> = { ...((props.connector?.target ?? {}) as Record<string, unknown>) };
    target.protocol = f.protocol;
    target.url = f.url;
    const origins = f.origins.split(",").map((o) => o.trim()).filter(Boolean);
    if (origins.length) target.origins = origins;
    else delete target.origins;
    if (f.method) target.method = f.method;
    else delete target.method;
    if (headers !== undefined) target.headers = headers;
    else delete target.headers;
    const body: Record<string, unknown> = { name: f.name, tags: tagsOf(f.tags), target, script: f.script.trim() ? f.script : null };
    if (f.description || props.connector) body.description = f.description;
    if (settings !== undefined) body.settings = settings;
    else if (props.connector) body.settings = {};
    const c = props.connector;
    const result = await save.run(() =>
      c
        ? client.updateConnector(props.org, c.id, body as ConnectorUpdate, c.version)
        : client.createConnector(props.org, body as unknown as ConnectorCreate),
    );
    if (result) props.onSaved(result);
  }

  const compileMark = scriptLine(err);
  const mark = compileMark ?? tryLine;
  return (
    <>
      <form onSubmit={submit} noValidate className="card form-grid" aria-label="Connector settings">
        <ErrorMessage error={err} claimed={CLAIMED} />
        {localError && <div className="error" role="alert">{localError}</div>}
        <Field label="Name" error={fieldError(err, "name")}>
          {(p) => <input {...p} required readOnly={ro} value={f.name} onChange={(e) => upd("name", e.target.value)} />}
        </Field>
        <Field label="Description" error={fieldError(err, "description")}>
          {(p) => <input {...p} readOnly={ro} value={f.description} onChange={(e) => upd("description", e.target.value)} />}
        </Field>
        <TagsField value={f.tags} onChange={(text) => upd("tags", text)} error={err} readOnly={ro} />
        <Field label="Upstream protocol" error={fieldError(err, "target.protocol")}>
          {(p) => (
            <select {...p} disabled={ro} value={f.protocol} onChange={(e) => upd("protocol", e.target.value as "rest" | "soap")}>
              <option value="rest">REST</option>
              <option value="soap">SOAP</option>
            </select>
          )}
        </Field>
        <Field label="Upstream URL" error={fieldError(err, "target.url") ?? (fieldError(err, "target") && !fieldError(err, "target.url") ? fieldError(err, "target") : undefined)}>
          {(p) => <input {...p} required readOnly={ro} value={f.url} placeholder="https://upstream.example/orders"
            onChange={(e) => upd("url", e.target.value)} />}
        </Field>
        {f.protocol === "rest" && (
          <Field label="Origins (optional)" error={fieldError(err, "target.origins")}
            hint="comma separated scheme://host[:port]: calls go round them instead of the URL's own (docs/resilience.md)">
            {(p) => <input {...p} readOnly={ro} value={f.origins} placeholder="http://10.0.0.5:8080, http://10.0.0.6:8080"
              onChange={(e) => upd("origins", e.target.value)} />}
          </Field>
        )}
        <Field label="Upstream method" error={fieldError(err, "target.method")} hint="empty: the caller's method">
          {(p) => (
            <select {...p} disabled={ro} value={f.method} onChange={(e) => upd("method", e.target.value)}>
              {TARGET_METHODS.map((m) => <option key={m} value={m}>{m === "" ? "(the caller's)" : m === "*" ? "any" : m}</option>)}
            </select>
          )}
        </Field>
        <Field label="Upstream headers (JSON object)" error={fieldError(err, "target.headers")}>
          {(p) => <textarea {...p} rows={3} readOnly={ro} value={f.headers} placeholder='{"Accept": "application/json"}'
            onChange={(e) => upd("headers", e.target.value)} />}
        </Field>
        <Field label="Settings (JSON object, ctx.settings)" error={fieldError(err, "settings", "secret_fields")} className="wide"
          hint="secret settings show as ********; leave them so to keep them">
          {(p) => <textarea {...p} rows={3} readOnly={ro} value={f.settings} onChange={(e) => upd("settings", e.target.value)} />}
        </Field>
        <div className={`field wide${mark ? " invalid" : ""}`}>
          <span className="label" id={editorLabel}>Script (Python)</span>
          <Suspense fallback={<Loading what="the script editor" />}>
            <ScriptEditor
              value={f.script}
              onChange={(v) => upd("script", v)}
              readOnly={ro}
              errorLine={mark?.line ?? null}
              errorMessage={mark?.message}
              labelledBy={editorLabel}
              describedBy={mark ? editorError : undefined}
            />
          </Suspense>
          {mark ? (
            <div className="field-error" id={editorError} data-testid="script-error">
              Line {mark.line}: {mark.message}
            </div>
          ) : fieldError(err, "script") ? (
            <div className="field-error" id={editorError}>{fieldError(err, "script")}</div>
          ) : null}
        </div>
        {!ro && (
          <div className="wide">
            <button type="submit" className="primary" disabled={save.busy}>
              {props.connector ? "Save changes" : "Create connector"}
            </button>
          </div>
        )}
      </form>
      <TryPanel org={props.org} connector={props.connector} script={f.script} onLine={setTryLine} />
    </>
  );
}

/** "Try it": run the editor's script on a sample request (and response) in the sandbox, nothing sent. */
function TryPanel(props: {
  org: string; connector?: Connector; script: string; onLine: (mark: { line: number; message: string } | null) => void;
}) {
  const { client, canWrite } = useSession();
  const [method, setMethod] = useState<(typeof TRY_METHODS)[number]>("GET");
  const [path, setPath] = useState("/");
  const [pathParams, setPathParams] = useState("");
  const [query, setQuery] = useState("");
  const [headers, setHeaders] = useState("");
  const [body, setBody] = useState("");
  const [withResponse, setWithResponse] = useState(false);
  const [status, setStatus] = useState("200");
  const [responseBody, setResponseBody] = useState("");
  const [result, setResult] = useState<ConnectorTestResult | null>(null);
  const [localError, setLocalError] = useState<string | null>(null);
  const [statusError, setStatusError] = useState<string | null>(null);
  const run = useAction();

  if (!canWrite) return null; // the try-out endpoint is for those who may change the connector

  async function submit(e: FormEvent) {
    e.preventDefault();
    setLocalError(null);
    setStatusError(null);
    setResult(null);
    props.onLine(null);
    let request: NonNullable<ConnectorTestRequest["request"]>;
    let response: ConnectorTestRequest["response"];
    try {
      request = { method, path };
      const pp = parseJsonField(pathParams, "Path parameters");
      const q = parseJsonField(query, "Query");
      const h = parseJsonField(headers, "Headers");
      if (pp) request.path_params = pp as Record<string, string>;
      if (q) request.query = q as Record<string, string>;
      if (h) request.headers = h as Record<string, string>;
      if (body.trim()) {
        try {
          request.json = JSON.parse(body);
        } catch {
          request.body = body;
        }
      }
      if (withResponse) {
        const code = status.trim();
        if (!/^\d+$/.test(code) || Number(code) < 100 || Number(code) > 599) {
          setStatusError("must be an integer from 100 to 599");
          return;
        }
        response = { status: Number(code) };
        if (responseBody.trim()) {
          try {
            response.json = JSON.parse(responseBody);
          } catch {
            response.body = responseBody;
          }
        }
      }
    } catch (x) {
      setLocalError((x as Error).message);
      return;
    }
    const payload = { script: props.script, request, ...(response ? { response } : {}) };
    const out = await run.run(() =>
      props.connector ? client.testConnector(props.org, props.connector.id, payload) : client.tryScript(props.org, payload),
    );
    if (out) {
      setResult(out);
      if (out.error?.line) props.onLine({ line: out.error.line, message: out.error.message });
    }
  }

  // A script that does not compile: mark its line in the editor too.
  const compile = run.error instanceof JunctionError && run.error.code === "script_invalid" ? run.error : null;
  return (
    <section className="card" aria-labelledby="try-title">
      <h2 id="try-title">Try it</h2>
      <p className="muted">Runs the script in the editor (saved or not) on a sample request; nothing is sent upstream.</p>
      <form onSubmit={submit} noValidate className="form-grid" aria-label="Try the script">
        <Field label="Method">
          {(p) => (
            <select {...p} value={method} onChange={(e) => setMethod(e.target.value as (typeof TRY_METHODS)[number])}>
              {TRY_METHODS.map((m) => <option key={m}>{m}</option>)}
            </select>
          )}
        </Field>
        <Field label="Path" error={fieldError(run.error, "request.path")}>
          {(p) => <input {...p} value={path} onChange={(e) => setPath(e.target.value)} />}
        </Field>
        <Field label="Path parameters (JSON)" error={fieldError(run.error, "request.path_params")}>
          {(p) => <input {...p} value={pathParams} placeholder='{"id": "A-42"}' onChange={(e) => setPathParams(e.target.value)} />}
        </Field>
        <Field label="Query (JSON)" error={fieldError(run.error, "request.query")}>
          {(p) => <input {...p} value={query} placeholder='{"page": "1"}' onChange={(e) => setQuery(e.target.value)} />}
        </Field>
        <Field label="Headers (JSON)" error={fieldError(run.error, "request.headers")}>
          {(p) => <input {...p} value={headers} onChange={(e) => setHeaders(e.target.value)} />}
        </Field>
        <Field label="Body (JSON or text)" error={fieldError(run.error, "request.body", "request.json")}>
          {(p) => <textarea {...p} rows={3} value={body} onChange={(e) => setBody(e.target.value)} />}
        </Field>
        <label className="check wide">
          <input type="checkbox" checked={withResponse} onChange={(e) => setWithResponse(e.target.checked)} />
          Also try transform_response on a sample upstream response
        </label>
        {withResponse && (
          <>
            <Field label="Response status" error={statusError ?? fieldError(run.error, "response.status")}>
              {(p) => <input {...p} inputMode="numeric" value={status} onChange={(e) => setStatus(e.target.value)} />}
            </Field>
            <Field label="Response body (JSON or text)" error={fieldError(run.error, "response")}>
              {(p) => <textarea {...p} rows={3} value={responseBody} onChange={(e) => setResponseBody(e.target.value)} />}
            </Field>
          </>
        )}
        <div className="wide">
          <button type="submit" disabled={run.busy}>{run.busy ? "Running…" : "Run"}</button>
        </div>
      </form>
      {localError && <div className="error" role="alert">{localError}</div>}
      {compile ? (
        <div className="error" role="alert" data-testid="try-compile-error">
          The script does not compile: line {String(compile.body.line)}: {String(compile.body.message ?? compile.message)}
          <ScriptLineEffect line={Number(compile.body.line)} message={String(compile.body.message ?? "")} onLine={props.onLine} />
        </div>
      ) : (
        <ErrorMessage error={run.error} claimed={["request", "response"]} />
      )}
      {result && (
        <div className="try-result" role="status" aria-live="polite">
          <p>Ran: {result.ran.length ? result.ran.join(", ") : "nothing (the script has neither function)"}</p>
          {result.error && (
            <div className="error">
              {result.error.stage} failed: {result.error.code}: {result.error.message}
              {result.error.line ? ` (line ${result.error.line})` : ""} — callers would get {result.error.status}
            </div>
          )}
          <div className="two-col">
            {result.request && <div><h3>Request to the upstream</h3><Json value={result.request} /></div>}
            {result.response && <div><h3>Response to the caller</h3><Json value={result.response} /></div>}
          </div>
          {result.logs.length > 0 && <><h3>Logs</h3><pre className="json">{result.logs.join("\n")}</pre></>}
        </div>
      )}
    </section>
  );
}


function ScriptLineEffect(props: { line: number; message: string; onLine: (m: { line: number; message: string }) => void }) {
  const { line, message, onLine } = props;
  useEffect(() => {
    if (line) onLine({ line, message });
  }, [line, message, onLine]);
  return null;
}
