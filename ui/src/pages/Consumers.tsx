import type { Consumer, NewApiKey, NewOAuthClient } from "@junction/sdk";
import { useState, type FormEvent } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { VersionsPanel } from "../components/Versions";
import { useSession } from "../session";
import {
  ErrorMessage, Field, fieldError, formatTime, Loading, num, PageHeader, Pager, TableWrap, useAction, useCursor, useLoad,
} from "../ui";

export function ConsumersPage() {
  const { canWrite } = useSession();
  // The API keeps consumers (callers' credentials) to the organisation's admins: a viewer gets 403.
  if (!canWrite) {
    return (
      <section>
        <PageHeader title="Consumers" />
        <p>Consumers and their credentials are shown to the organisation's admins only.</p>
      </section>
    );
  }
  return <ConsumersList />;
}

function ConsumersList() {
  const { org = "" } = useParams();
  const { client, canWrite } = useSession();
  const paging = useCursor<string>();
  const page = useLoad(() => client.listConsumers(org, { limit: 50, cursor: paging.cursor }), [org, paging.cursor, client]);
  const [name, setName] = useState("");
  const create = useAction();

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (await create.run(() => client.createConsumer(org, { name }))) {
      setName("");
      page.reload();
    }
  }
  return (
    <section>
      <PageHeader title="Consumers" />
      {canWrite && (
        <form onSubmit={submit} noValidate className="card inline-form" aria-label="New consumer">
          <h2>New consumer</h2>
          <ErrorMessage error={create.error} claimed={["name"]} />
          <Field label="Name" error={fieldError(create.error, "name")}>
            {(p) => <input {...p} required value={name} onChange={(e) => setName(e.target.value)} />}
          </Field>
          <button type="submit" className="primary" disabled={create.busy}>Add consumer</button>
        </form>
      )}
      <ErrorMessage error={page.error} />
      {page.loading && !page.data ? <Loading what="consumers" /> : (
        <>
          <TableWrap label="Consumers">
            <thead><tr><th>Name</th><th>State</th><th>API keys</th><th>Basic</th><th>OAuth clients</th><th>Own rate limit</th><th>Version</th></tr></thead>
            <tbody>
              {page.data?.items.map((c) => (
                <tr key={c.id}>
                  <td><Link to={`/orgs/${org}/consumers/${c.id}`}>{c.name}</Link></td>
                  <td>{c.enabled ? "enabled" : <span className="warn">disabled</span>}</td>
                  <td>{c.keys.length}</td>
                  <td>{c.basic ? c.basic.username : "—"}</td>
                  <td>{c.oauth_clients.length}</td>
                  <td>{limitText(c)}</td>
                  <td>v{c.version}</td>
                </tr>
              ))}
              {page.data?.items.length === 0 && <tr><td colSpan={7}>No consumers yet.</td></tr>}
            </tbody>
          </TableWrap>
          <Pager page={paging.page} hasNext={!!page.data?.next_cursor} onPrev={paging.prev}
            onNext={() => page.data?.next_cursor && paging.next(page.data.next_cursor)} />
        </>
      )}
    </section>
  );
}

/** A consumer's own rate limit, as people say it. */
function limitText(c: Consumer): string {
  const rl = c.rate_limit;
  return rl ? `${rl.requests} per ${rl.per_seconds} s` : "none";
}

/** A secret shown once (a new API key or OAuth client secret), with a copy button. */
function ShownOnce({ label, value, onDone }: { label: string; value: string; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="secret" role="status">
      <p><strong>{label}</strong> — shown this once: copy it now, Junction keeps only its hash.</p>
      <code data-testid="secret-value">{value}</code>{" "}
      <button type="button" onClick={() => navigator.clipboard?.writeText(value).then(() => setCopied(true))}>
        {copied ? "Copied" : "Copy"}
      </button>{" "}
      <button type="button" onClick={onDone}>Done</button>
    </div>
  );
}

export function ConsumerPage() {
  const { org = "", id = "" } = useParams();
  const { client, canWrite } = useSession();
  const navigate = useNavigate();
  const consumer = useLoad(() => client.getConsumer(org, id), [org, id, client]);
  const keys = useLoad(() => client.listKeys(org, id), [org, id, consumer.data?.version, client]);
  const act = useAction();
  const [newKey, setNewKey] = useState<NewApiKey | null>(null);
  const [newClient, setNewClient] = useState<NewOAuthClient | null>(null);
  const [name, setName] = useState<string | null>(null);
  const [expires, setExpires] = useState("");
  const [basicUser, setBasicUser] = useState("");
  const [basicPassword, setBasicPassword] = useState("");
  const [scopes, setScopes] = useState("");
  const [limit, setLimit] = useState<{ requests: string; per_seconds: string } | null>(null);

  const c = consumer.data;
  if (consumer.loading && !c) return <Loading what="the consumer" />;
  if (consumer.error || !c) return <ErrorMessage error={consumer.error} />;

  const refresh = () => consumer.reload();
  async function rename(e: FormEvent, cur: Consumer) {
    e.preventDefault();
    const saved = name !== null ? await act.run(() => client.updateConsumer(org, id, { name }, cur.version)) : undefined;
    if (saved) {
      setName(null);
      // Opened by name: the page goes on by id, which the rename did not change.
      if (saved.id !== id) navigate(`/orgs/${org}/consumers/${saved.id}`, { replace: true });
      else refresh();
    }
  }
  async function createKey(e: FormEvent) {
    e.preventDefault();
    const k = await act.run(() => client.createKey(org, id, expires ? { expires_at: new Date(expires).toISOString() } : {}));
    if (k) {
      setNewKey(k);
      setExpires("");
      refresh();
    }
  }
  async function setBasic(e: FormEvent) {
    e.preventDefault();
    if (await act.run(() => client.setBasic(org, id, basicUser, basicPassword))) {
      setBasicPassword("");
      refresh();
    }
  }
  async function createClient(e: FormEvent) {
    e.preventDefault();
    const list = scopes.split(/[\s,]+/).filter(Boolean);
    const made = await act.run(() => client.createOAuthClient(org, id, list.length ? { scopes: list } : {}));
    if (made) {
      setNewClient(made);
      setScopes("");
      refresh();
    }
  }
  async function saveLimit(e: FormEvent, cur: Consumer) {
    e.preventDefault();
    if (!limit) return;
    const body = { rate_limit: { requests: num(limit.requests), per_seconds: num(limit.per_seconds) } as Consumer["rate_limit"] };
    if (await act.run(() => client.updateConsumer(org, id, body, cur.version))) {
      setLimit(null);
      refresh();
    }
  }
  const done = async (fn: () => Promise<void>) => {
    if (await act.run(async () => { await fn(); return true; })) refresh();
  };

  return (
    <section>
      <PageHeader title={`Consumer ${c.name}`}>
        <Link to={`/orgs/${org}/consumers`}>← All consumers</Link>
      </PageHeader>
      <ErrorMessage error={act.error} claimed={["name", "expires_at", "username", "password", "scopes", "rate_limit.requests", "rate_limit.per_seconds"]} />
      <div className="card">
        <p>State: {c.enabled ? "enabled" : <span className="warn">disabled</span>} · version {c.version} · id <code>{c.id}</code></p>
        {canWrite && (
          <div className="buttons">
            <button type="button" onClick={() => act.run(() => client.updateConsumer(org, id, { enabled: !c.enabled }, c.version)).then((r) => r && refresh())}>
              {c.enabled ? "Disable" : "Enable"}
            </button>
            <button type="button" onClick={() => setName(c.name)}>Rename</button>
          </div>
        )}
        {canWrite && name !== null && (
          <form onSubmit={(e) => rename(e, c)} noValidate className="inline-form">
            <Field label="New name" error={fieldError(act.error, "name")}>
              {(p) => <input {...p} value={name} autoFocus onChange={(e) => setName(e.target.value)} />}
            </Field>
            <button type="submit" className="primary">Save</button>
            <button type="button" onClick={() => setName(null)}>Cancel</button>
          </form>
        )}
      </div>

      <section className="card" aria-labelledby="limit-title">
        <h2 id="limit-title">Own rate limit</h2>
        <p>
          {c.rate_limit
            ? <>At most <strong>{limitText(c)}</strong>: it replaces the numbers of a limit by consumer on the APIs it calls, and elsewhere counts its calls across the organisation.</>
            : "None: the APIs' and the organisation's limits apply."}
        </p>
        {canWrite && limit === null && (
          <div className="buttons">
            <button type="button" onClick={() => setLimit({ requests: String(c.rate_limit?.requests ?? ""), per_seconds: String(c.rate_limit?.per_seconds ?? "") })}>
              {c.rate_limit ? "Change" : "Set a limit"}
            </button>
            {c.rate_limit && <button type="button" className="danger"
              onClick={() => done(async () => { await client.updateConsumer(org, id, { rate_limit: null }, c.version); })}>Remove</button>}
          </div>
        )}
        {canWrite && limit !== null && (
          <form onSubmit={(e) => saveLimit(e, c)} noValidate className="inline-form" aria-label="Own rate limit">
            <Field label="Requests" error={fieldError(act.error, "rate_limit.requests")}>
              {(p) => <input {...p} inputMode="numeric" value={limit.requests} onChange={(e) => setLimit({ ...limit, requests: e.target.value })} />}
            </Field>
            <Field label="Per seconds" error={fieldError(act.error, "rate_limit.per_seconds")}>
              {(p) => <input {...p} inputMode="decimal" value={limit.per_seconds} onChange={(e) => setLimit({ ...limit, per_seconds: e.target.value })} />}
            </Field>
            <button type="submit" className="primary">Save limit</button>
            <button type="button" onClick={() => setLimit(null)}>Cancel</button>
          </form>
        )}
      </section>

      <section className="card" aria-labelledby="keys-title">
        <h2 id="keys-title">API keys</h2>
        {newKey && <ShownOnce label={`New key ${newKey.prefix}…`} value={newKey.key} onDone={() => setNewKey(null)} />}
        <ErrorMessage error={keys.error} />
        <TableWrap label="API keys">
          <thead><tr><th>Prefix</th><th>Created</th><th>Expires</th>{canWrite && <th>Actions</th>}</tr></thead>
          <tbody>
            {keys.data?.map((k) => (
              <tr key={k.id}>
                <td><code>{k.prefix}…</code></td>
                <td>{formatTime(k.created_at)}</td>
                <td>{k.expires_at ? formatTime(k.expires_at) : "never"}</td>
                {canWrite && (
                  <td><button type="button" className="danger"
                    onClick={() => window.confirm(`Revoke the key ${k.prefix}…?`) && done(() => client.revokeKey(org, id, k.id))}>Revoke</button></td>
                )}
              </tr>
            ))}
            {keys.data?.length === 0 && <tr><td colSpan={4}>No keys.</td></tr>}
          </tbody>
        </TableWrap>
        {canWrite && (
          <form onSubmit={createKey} noValidate className="inline-form" aria-label="New API key">
            <Field label="Expires (optional)" error={fieldError(act.error, "expires_at")}>
              {(p) => <input {...p} type="datetime-local" value={expires} onChange={(e) => setExpires(e.target.value)} />}
            </Field>
            <button type="submit" className="primary">Create API key</button>
          </form>
        )}
      </section>

      <section className="card" aria-labelledby="basic-title">
        <h2 id="basic-title">Basic credentials</h2>
        <p>{c.basic ? <>Username <code>{c.basic.username}</code></> : "None set."}</p>
        {canWrite && (
          <form onSubmit={setBasic} noValidate className="inline-form" aria-label="Basic credentials">
            <Field label="Username" error={fieldError(act.error, "username")}>
              {(p) => <input {...p} autoComplete="off" value={basicUser} onChange={(e) => setBasicUser(e.target.value)} />}
            </Field>
            <Field label="Password" error={fieldError(act.error, "password")}>
              {(p) => <input {...p} type="password" autoComplete="new-password" value={basicPassword} onChange={(e) => setBasicPassword(e.target.value)} />}
            </Field>
            <button type="submit" className="primary">{c.basic ? "Replace" : "Set"} credentials</button>
            {c.basic && <button type="button" className="danger" onClick={() => done(() => client.deleteBasic(org, id))}>Remove</button>}
          </form>
        )}
      </section>

      <section className="card" aria-labelledby="oauth-title">
        <h2 id="oauth-title">OAuth clients</h2>
        {newClient && (
          <ShownOnce label={`Client ${newClient.client_id}: secret`} value={newClient.client_secret} onDone={() => setNewClient(null)} />
        )}
        <TableWrap label="OAuth clients">
          <thead><tr><th>Client id</th><th>Scopes</th>{canWrite && <th>Actions</th>}</tr></thead>
          <tbody>
            {c.oauth_clients.map((o) => (
              <tr key={o.client_id}>
                <td><code>{o.client_id}</code></td>
                <td>{o.scopes.join(" ")}</td>
                {canWrite && <td><button type="button" className="danger"
                  onClick={() => window.confirm(`Delete the client ${o.client_id}?`) && done(() => client.deleteOAuthClient(org, id, o.client_id))}>Delete</button></td>}
              </tr>
            ))}
            {c.oauth_clients.length === 0 && <tr><td colSpan={3}>No OAuth clients.</td></tr>}
          </tbody>
        </TableWrap>
        {canWrite && (
          <form onSubmit={createClient} noValidate className="inline-form" aria-label="New OAuth client">
            <Field label="Scopes (space separated, optional)" error={fieldError(act.error, "scopes")}>
              {(p) => <input {...p} value={scopes} onChange={(e) => setScopes(e.target.value)} />}
            </Field>
            <button type="submit" className="primary">Create OAuth client</button>
          </form>
        )}
      </section>

      <VersionsPanel org={org} kind="consumers" id={c.id} current={c.version} onRolledBack={refresh} />
    </section>
  );
}
