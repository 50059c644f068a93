/** The session's end, seen from the page: a banner a couple of minutes before the token expires, and a
 * log-in dialog over the page (before, on asking; after, by itself). The page under it stays mounted, so
 * its unsaved edits are there once the user has logged in again. */
import { useEffect, useRef, useState, type FormEvent } from "react";
import { useNavigate } from "react-router";
import { useSession } from "../session";
import { ErrorMessage, Field, fieldError, useAction } from "../ui";

function clock(exp: number): string {
  return new Date(exp * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function SessionExpiry() {
  const session = useSession();
  const [asked, setAsked] = useState(false);
  useEffect(() => setAsked(false), [session.token]);
  if (!session.token || !session.claims) return null;
  return (
    <>
      {session.expiresSoon && !session.expired && (
        <div className="notice session-warning" role="alert">
          Your session ends at {clock(session.claims.exp)}.{" "}
          <button type="button" onClick={() => setAsked(true)}>Log in again</button>{" "}
          to carry on: this page and its unsaved changes stay as they are.
        </div>
      )}
      {(asked || session.expired || session.revoked) && (
        <ReloginDialog ended={session.expired ? "expired" : session.revoked ? "revoked" : null}
          onCancel={() => setAsked(false)} />
      )}
    </>
  );
}

/** `ended`: why the session is over ("expired" at its time, "revoked" before it), or null when the user asked
 * to log in again before the expiry; only then may the dialog be put off. */
function ReloginDialog({ ended, onCancel }: { ended: "expired" | "revoked" | null; onCancel: () => void }) {
  const session = useSession();
  const navigate = useNavigate();
  const ref = useRef<HTMLDialogElement>(null);
  const [password, setPassword] = useState("");
  const { error, busy, run } = useAction();

  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal?.();
    return () => dialog?.close?.();
  }, []);

  async function submit(e: FormEvent) {
    e.preventDefault();
    await run(() => session.relogin(password)); // a new token: the session closes this dialog
  }

  return (
    <dialog ref={ref} className="card relogin" aria-labelledby="relogin-title"
      onCancel={(e) => {
        e.preventDefault(); // Escape: only Cancel closes it, and only before the session has expired
        if (!ended) onCancel();
      }}>
      <form onSubmit={submit} noValidate aria-label="Log in again">
        <h2 id="relogin-title">
          {ended === "expired" ? "Your session has expired" : ended === "revoked" ? "Your session was ended" : "Log in again"}
        </h2>
        {ended === "revoked" && <p>It was ended before its time: logged out elsewhere, or the password was changed.</p>}
        <p>
          Log in again as <strong>{session.claims?.email}</strong> to carry on here: the page and its unsaved
          changes stay as they are.
        </p>
        <ErrorMessage error={error} claimed={["password"]} />
        <Field label="Password" error={fieldError(error, "password")}>
          {(p) => (
            <input {...p} type="password" autoComplete="current-password" required autoFocus value={password}
              onChange={(e) => setPassword(e.target.value)} />
          )}
        </Field>
        <div className="buttons">
          <button type="submit" className="primary" disabled={busy}>{busy ? "Logging in…" : "Log in"}</button>
          {!ended && <button type="button" onClick={onCancel}>Not now</button>}
          <button type="button" onClick={() => session.logout().catch(() => {}).finally(() => navigate("/login"))}>
            Log out
          </button>
        </div>
      </form>
    </dialog>
  );
}
