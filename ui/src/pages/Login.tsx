import { useState, type FormEvent } from "react";
import { Navigate, useLocation } from "react-router";
import { useSession } from "../session";
import { ErrorMessage, Field, fieldError, useAction } from "../ui";

export function LoginPage() {
  const session = useSession();
  const location = useLocation();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const { error, busy, run } = useAction();
  // Where to go once logged in: the page this user's ended session was on, or the one that sent us here
  // (another user's page never: they start on their own start page).
  if (session.token) return <Navigate to={session.returnPage((location.state as { from?: string } | null)?.from)} replace />;

  async function submit(e: FormEvent) {
    e.preventDefault();
    await run(() => session.login(email, password)); // logged in: the Navigate above takes over
  }

  return (
    <main className="login" id="main">
      <form onSubmit={submit} className="card" aria-labelledby="login-title">
        <h1 id="login-title">Junction console</h1>
        <ErrorMessage error={error} claimed={["email", "password"]} />
        <Field label="E-mail" error={fieldError(error, "email")}>
          {(p) => (
            <input {...p} type="email" autoComplete="username" required value={email} autoFocus
              onChange={(e) => setEmail(e.target.value)} />
          )}
        </Field>
        <Field label="Password" error={fieldError(error, "password")}>
          {(p) => (
            <input {...p} type="password" autoComplete="current-password" required value={password}
              onChange={(e) => setPassword(e.target.value)} />
          )}
        </Field>
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Logging in…" : "Log in"}
        </button>
      </form>
    </main>
  );
}
