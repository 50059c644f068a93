import type { User } from "@junction/sdk";
import { useState, type FormEvent } from "react";
import { useParams } from "react-router";
import { useSession } from "../session";
import { ErrorMessage, Field, fieldError, formatTime, Loading, PageHeader, TableWrap, useAction, useLoad } from "../ui";

type OrgRole = "org_admin" | "org_viewer";

/** The users of an organisation; its admins (and global admins) add, change and remove them. */
export function UsersPage() {
  const { org = "" } = useParams();
  const { client, canWrite, claims } = useSession();
  const users = useLoad(() => client.listUsers(org), [org, client]);
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<OrgRole>("org_viewer");
  const create = useAction();
  const row = useAction();

  async function submit(e: FormEvent) {
    e.preventDefault();
    if (await create.run(() => client.createUser(org, { email, password, role }))) {
      setEmail("");
      setPassword("");
      users.reload();
    }
  }
  async function change(u: User, body: { role?: OrgRole; enabled?: boolean }) {
    if (await row.run(() => client.updateUser(org, u.id, body, u.version))) users.reload();
  }
  async function remove(u: User) {
    if (!window.confirm(`Delete the user ${u.email}?`)) return;
    if (await row.run(async () => { await client.deleteUser(org, u.id, u.version); return true; })) users.reload();
  }

  return (
    <section>
      <PageHeader title="Users" />
      {canWrite && (
        <form onSubmit={submit} className="card inline-form" aria-label="New user">
          <h2>New user</h2>
          <ErrorMessage error={create.error} claimed={["email", "password", "role"]} />
          <Field label="E-mail" error={fieldError(create.error, "email")}>
            {(p) => <input {...p} type="email" required value={email} onChange={(e) => setEmail(e.target.value)} />}
          </Field>
          <Field label="Password" error={fieldError(create.error, "password")} hint="8 to 72 characters">
            {(p) => <input {...p} type="password" autoComplete="new-password" required value={password}
              onChange={(e) => setPassword(e.target.value)} />}
          </Field>
          <Field label="Role" error={fieldError(create.error, "role")}>
            {(p) => (
              <select {...p} value={role} onChange={(e) => setRole(e.target.value as OrgRole)}>
                <option value="org_viewer">Viewer (read only)</option>
                <option value="org_admin">Organisation admin</option>
              </select>
            )}
          </Field>
          <button type="submit" className="primary" disabled={create.busy}>Add user</button>
        </form>
      )}
      <ErrorMessage error={users.error ?? row.error} />
      {users.loading && !users.data ? <Loading what="users" /> : (
        <TableWrap label="Users">
          <thead><tr><th>E-mail</th><th>Role</th><th>State</th><th>Created</th>{canWrite && <th>Actions</th>}</tr></thead>
          <tbody>
            {users.data?.map((u) => (
              <tr key={u.id}>
                <td>{u.email}</td>
                <td>
                  {canWrite && u.id !== claims?.sub && u.role !== "global_admin" ? (
                    <label className="compact">
                      <span className="sr-only">Role of {u.email}</span>
                      <select value={u.role} onChange={(e) => change(u, { role: e.target.value as OrgRole })}>
                        <option value="org_viewer">Viewer</option>
                        <option value="org_admin">Organisation admin</option>
                      </select>
                    </label>
                  ) : u.role}
                </td>
                <td>{u.enabled ? "enabled" : <span className="warn">disabled</span>}</td>
                <td>{formatTime(u.created_at)}</td>
                {canWrite && (
                  <td className="buttons">
                    {u.id !== claims?.sub && (
                      <>
                        <button type="button" onClick={() => change(u, { enabled: !u.enabled })}>
                          {u.enabled ? "Disable" : "Enable"}
                        </button>
                        <button type="button" className="danger" onClick={() => remove(u)}>Delete</button>
                      </>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </TableWrap>
      )}
    </section>
  );
}
