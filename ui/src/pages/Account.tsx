import { useState, type FormEvent } from "react";
import { useSession } from "../session";
import { ErrorMessage, Field, fieldError, PageHeader, useAction } from "../ui";

/** Change your own password (every earlier session ends; this one goes on with a new token). */
export function AccountPage() {
  const { claims, client, adopt } = useSession();
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [done, setDone] = useState(false);
  const { error, busy, run } = useAction();

  async function submit(e: FormEvent) {
    e.preventDefault();
    setDone(false);
    const token = await run(() => client.changePassword(current, next));
    if (token) {
      adopt(token.access_token);
      setCurrent("");
      setNext("");
      setDone(true);
    }
  }
  return (
    <section>
      <PageHeader title="Your account" />
      <p>
        {claims?.email} — {claims?.role}
      </p>
      <form onSubmit={submit} className="card narrow">
        <h2>Change your password</h2>
        <ErrorMessage error={error} claimed={["current_password", "new_password"]} />
        {done && <p role="status">Password changed.</p>}
        <Field label="Current password" error={fieldError(error, "current_password")}>
          {(p) => <input {...p} type="password" autoComplete="current-password" required value={current}
            onChange={(e) => setCurrent(e.target.value)} />}
        </Field>
        <Field label="New password" error={fieldError(error, "new_password")} hint="8 to 72 characters">
          {(p) => <input {...p} type="password" autoComplete="new-password" required value={next}
            onChange={(e) => setNext(e.target.value)} />}
        </Field>
        <button className="primary" type="submit" disabled={busy}>Change password</button>
      </form>
    </section>
  );
}
