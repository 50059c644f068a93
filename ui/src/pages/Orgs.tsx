import type { Org } from "@junction/sdk";
import { useState, type FormEvent } from "react";
import { Link } from "react-router";
import { useOrgList } from "../orgList";
import { useClient } from "../session";
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
                </td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      )}
    </section>
  );
}
