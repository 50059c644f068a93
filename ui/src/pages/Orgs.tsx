import { JunctionError } from "@junction/sdk";
import type { Org, OrgUpdate } from "@junction/sdk";
import { useState, type FormEvent } from "react";
import { Link, useParams } from "react-router";
import { AppliedStatus } from "../components/Applied";
import {
  corsBody, CorsFields, corsForm, IpRestrictionFields, ipRestrictionBody, ipRestrictionForm, rateLimitBody, RateLimitFields,
  rateLimitForm, type CorsForm, type IpRestrictionForm, type RateLimitForm,
} from "../components/Policies";
import { useOrgList } from "../orgList";
import { useClient, useSession } from "../session";
import { ErrorMessage, Field, fieldError, formatTime, Loading, PageHeader, TableWrap, useAction, useLoad } from "../ui";

/** Global admin: every organisation; create, rename, disable or enable one. */
export function OrgsPage() {
  const client = useClient();
  const loaded = useLoad(() => client.listOrgs(), [client]);
  const orgList = useOrgList();
  // Every change here shows in the top bar's organisation switch too.
  const orgs = { ...loaded, reload: () => { loaded.reload(); orgList.reload(); } };
  const [slug, setSlug] = useState("");
  const [name, setName] = useState("");
  const create = useAction();
  const rowAction = useAction();
  const [renaming, setRenaming] = useState<string | null>(null);
  const [newName, setNewName] = useState("");

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (await create.run(() => client.createOrg({ slug, name }))) {
      setSlug("");
      setName("");
      orgs.reload();
    }
  }
  async function rename(o: Org, e: FormEvent) {
    e.preventDefault();
    if (await rowAction.run(() => client.updateOrg(o.slug, { name: newName }, o.version))) {
      setRenaming(null);
      orgs.reload();
    }
  }
  async function toggle(o: Org) {
    if (await rowAction.run(() => client.updateOrg(o.slug, { enabled: !o.enabled }, o.version))) orgs.reload();
  }

  return (
    <section>
      <PageHeader title="Organisations" />
      <form onSubmit={submit} className="card inline-form" aria-label="New organisation">
        <h2>New organisation</h2>
        <ErrorMessage error={create.error} claimed={["slug", "name"]} />
        <Field label="Slug" error={fieldError(create.error, "slug")} hint="URL prefix on ingress: lower-case letters, digits, -">
          {(p) => <input {...p} required value={slug} onChange={(e) => setSlug(e.target.value)} />}
        </Field>
        <Field label="Name" error={fieldError(create.error, "name")}>
          {(p) => <input {...p} required value={name} onChange={(e) => setName(e.target.value)} />}
        </Field>
        <button type="submit" className="primary" disabled={create.busy}>Create organisation</button>
      </form>
      <ErrorMessage error={orgs.error ?? rowAction.error} claimed={["name"]} />
      {orgs.loading && !orgs.data ? (
        <Loading what="organisations" />
      ) : (
        <TableWrap label="Organisations">
          <thead>
            <tr><th>Name</th><th>Slug</th><th>State</th><th>Created</th><th>Actions</th></tr>
          </thead>
          <tbody>
            {orgs.data?.map((o) => (
              <tr key={o.id}>
                <td>
                  {renaming === o.id ? (
                    <form onSubmit={(e) => rename(o, e)} className="row-form">
                      <Field label={`New name of ${o.slug}`} error={fieldError(rowAction.error, "name")}>
                        {(p) => <input {...p} required value={newName} autoFocus onChange={(e) => setNewName(e.target.value)} />}
                      </Field>
                      <button type="submit">Save</button>
                      <button type="button" onClick={() => setRenaming(null)}>Cancel</button>
                    </form>
                  ) : (
                    <Link to={`/orgs/${o.slug}/apis`}>{o.name}</Link>
                  )}
                </td>
                <td><code>{o.slug}</code></td>
                <td>{o.enabled ? "enabled" : <span className="warn">disabled</span>}</td>
                <td>{formatTime(o.created_at)}</td>
                <td className="buttons">
                  <button type="button" onClick={() => { setRenaming(o.id); setNewName(o.name); }}>Rename</button>
                  <button type="button" onClick={() => toggle(o)}>{o.enabled ? "Disable" : "Enable"}</button>
                  <Link className="button" to={`/orgs/${o.slug}/policies`}>Caller policies</Link>
                </td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      )}
    </section>
  );
}

// -- an organisation's caller policies ---------------------------------------------------------------------

type Policy = "rate_limit" | "ip_restriction" | "cors";
const POLICIES: Policy[] = ["rate_limit", "ip_restriction", "cors"];
const POLICY_NAMES: Record<Policy, string> = { rate_limit: "rate limit", ip_restriction: "IP restriction", cors: "CORS policy" };

interface PolicyForm {
  rate_limit: RateLimitForm;
  ip_restriction: IpRestrictionForm;
  cors: CorsForm;
}

function policyForm(o: Org): PolicyForm {
  return { rate_limit: rateLimitForm(o.rate_limit), ip_restriction: ipRestrictionForm(o.ip_restriction), cors: corsForm(o.cors) };
}

/** Each policy as the form has it: null where it is off or empty (the API removes it). */
function policyBody(f: PolicyForm): OrgUpdate {
  return { rate_limit: rateLimitBody(f.rate_limit), ip_restriction: ipRestrictionBody(f.ip_restriction), cors: corsBody(f.cors) };
}

/** The organisation's caller policies (its APIs' default rate limit, the ip_restriction every API applies
 * besides its own, the CORS policy of APIs without one): its admins and global admins edit them, a viewer
 * reads them. */
export function OrgPoliciesPage() {
  const { org = "" } = useParams();
  const { client, canWrite } = useSession();
  const loaded = useLoad(() => client.getOrg(org), [org, client]);
  if (loaded.error && !loaded.data) return <ErrorMessage error={loaded.error} />;
  if (!loaded.data || loaded.data.slug !== org) return <Loading what="the organisation's policies" />;
  return (
    <section>
      <PageHeader title="Caller policies" />
      <p className="muted">
        Policies of every API of <strong>{loaded.data.name}</strong>, as plugins set globally: a rate limit for the APIs
        without one of their own, an IP restriction every API applies besides its own (a caller must pass both), and
        the CORS policy of the APIs without one (docs/auth.md, docs/cors.md).
        {!canWrite && " You may read them; an organisation admin changes them."}
      </p>
      <OrgPoliciesForm key={loaded.data.id} initial={loaded.data} readOnly={!canWrite} />
    </section>
  );
}

function OrgPoliciesForm({ initial, readOnly }: { initial: Org; readOnly: boolean }) {
  const client = useClient();
  // The organisation as the API last answered: its version goes in If-Match.
  const [current, setCurrent] = useState(initial);
  const [f, setF] = useState<PolicyForm>(() => policyForm(initial));
  const [notice, setNotice] = useState<string | null>(null);
  const save = useAction();
  const err = save.error;
  const stale = err instanceof JunctionError && err.status === 412;
  const upd = <K extends keyof PolicyForm>(key: K, value: PolicyForm[K]) => {
    setNotice(null);
    setF((prev) => ({ ...prev, [key]: value }));
  };

  function saved(answer: Org, text: string) {
    setCurrent(answer);
    setNotice(answer.version === current.version ? `No change: ${answer.slug} is still at version ${answer.version}.`
      : `Saved: ${text}; ${answer.slug} is at version ${answer.version}.`);
  }

  async function submit(e: FormEvent) {
    e.preventDefault();
    const answer = await save.run(() => client.updateOrg(current.slug, policyBody(f), current.version));
    if (answer) {
      saved(answer, "the caller policies");
      setF(policyForm(answer));
    }
  }

  async function remove(policy: Policy) {
    const answer = await save.run(() => client.updateOrg(current.slug, { [policy]: null }, current.version));
    if (answer) {
      saved(answer, `the ${POLICY_NAMES[policy]} is removed`);
      // The other policies keep what was typed and not saved yet.
      setF((prev) => ({ ...prev, [policy]: policyForm(answer)[policy] }));
    }
  }

  async function reload() {
    const fresh = await save.run(() => client.getOrg(current.slug));
    if (fresh) {
      setCurrent(fresh);
      setF(policyForm(fresh));
      setNotice(`Reloaded: ${fresh.slug} is at version ${fresh.version}.`);
    }
  }

  const removeButton = (policy: Policy) =>
    !readOnly && current[policy] ? (
      <div className="wide buttons">
        <button type="button" className="danger" disabled={save.busy} onClick={() => remove(policy)}>
          Remove the {POLICY_NAMES[policy]}
        </button>
      </div>
    ) : null;

  return (
    <>
      {notice && <p className="notice" role="status">{notice}</p>}
      {notice?.startsWith("Saved:") && <AppliedStatus change={notice} />}
      <form onSubmit={submit} noValidate className="card form-grid" aria-label="Caller policies">
        <ErrorMessage error={err} claimed={POLICIES} />
        {stale && (
          <div className="wide buttons">
            <button type="button" onClick={reload} disabled={save.busy}>Reload the organisation (drops your changes)</button>
          </div>
        )}
        <RateLimitFields value={f.rate_limit} onChange={(v) => upd("rate_limit", v)} error={err} readOnly={readOnly}
          checkLabel="Limit the calls to each API without a limit of its own" />
        {removeButton("rate_limit")}
        <IpRestrictionFields value={f.ip_restriction} onChange={(v) => upd("ip_restriction", v)} error={err} readOnly={readOnly} />
        {removeButton("ip_restriction")}
        <CorsFields value={f.cors} onChange={(v) => upd("cors", v)} error={err} readOnly={readOnly}
          originsHint="pages of these origins may call the APIs without a policy of their own: comma separated, e.g. https://app.example.com, https://*.example.com, or * (empty: none)" />
        {removeButton("cors")}
        {!readOnly && (
          <div className="wide">
            <button type="submit" className="primary" disabled={save.busy}>Save policies</button>
          </div>
        )}
        <p className="hint wide">Version {current.version}</p>
      </form>
    </>
  );
}
