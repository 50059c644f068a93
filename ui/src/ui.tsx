/** Small building blocks shared by every page: loading, errors, labelled fields, tables, paging. */
import { JunctionError } from "@junction/sdk";
import { useCallback, useEffect, useId, useRef, useState, type ReactNode } from "react";

/** Load data with `fn` whenever `deps` change; errors are kept, never swallowed. */
export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]) {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    let live = true;
    setLoading(true);
    fnRef
      .current()
      .then((d) => live && (setData(d), setError(null)))
      .catch((e) => live && setError(e))
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload, setData };
}

/** Run an action (a save, a delete), keeping its error and whether it is running. */
export function useAction() {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const run = useCallback(async <T,>(fn: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(null);
    try {
      return await fn();
    } catch (e) {
      setError(e);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { error, busy, run, setError };
}

/** The messages of a 422's `fields` for one form field: the field itself or anything under it. */
export function fieldError(error: unknown, ...names: string[]): string | undefined {
  if (!(error instanceof JunctionError)) return undefined;
  const hits = error.fields.filter((f) =>
    names.some((n) => f.field === n || f.field.startsWith(n + ".") || f.field.startsWith(n + "[")),
  );
  return hits.length ? hits.map((f) => (f.field === names[0] ? f.message : `${f.field}: ${f.message}`)).join("; ") : undefined;
}

/** The error as a message: code, text, request id, and the `fields` no form field claimed. */
export function ErrorMessage({ error, claimed = [] }: { error: unknown; claimed?: string[] }) {
  if (!error) return null;
  if (error instanceof JunctionError && error.code === "unreachable") {
    return (
      <div className="error" role="alert">
        <strong>Could not reach the management API:</strong> {String(error.body.message ?? error.message)}
      </div>
    );
  }
  if (error instanceof JunctionError) {
    const rest = error.fields.filter(
      (f) => !claimed.some((n) => f.field === n || f.field.startsWith(n + ".") || f.field.startsWith(n + "[")),
    );
    const text =
      error.status === 412
        ? "Someone changed this since you opened it: reload to see their version, then make your change again."
        : error.status === 422 && error.fields.length && rest.length === 0
          ? "Please correct the fields marked below."
          : String(error.body.message ?? error.message);
    return (
      <div className="error" role="alert">
        <strong>{text}</strong> <span className="muted">({error.status} {error.code}
        {error.requestId ? `, request ${error.requestId}` : ""})</span>
        {rest.length > 0 && (
          <ul>
            {rest.map((f, i) => (
              <li key={i}>
                <code>{f.field}</code>: {f.message}
              </li>
            ))}
          </ul>
        )}
      </div>
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return (
    <div className="error" role="alert">
      <strong>Could not reach the management API:</strong> {message}
    </div>
  );
}

interface FieldProps {
  label: string;
  error?: string;
  hint?: ReactNode;
  children: (props: { id: string; "aria-invalid"?: boolean; "aria-describedby"?: string }) => ReactNode;
  className?: string;
}

/** A labelled form field; the error (a 422's message for it) shows under it and is read out with it. */
export function Field({ label, error, hint, children, className }: FieldProps) {
  const id = useId();
  const described = [error ? `${id}-error` : "", hint ? `${id}-hint` : ""].filter(Boolean).join(" ");
  return (
    <div className={`field${error ? " invalid" : ""}${className ? ` ${className}` : ""}`}>
      <label htmlFor={id}>{label}</label>
      {children({ id, "aria-invalid": error ? true : undefined, "aria-describedby": described || undefined })}
      {hint && (
        <div className="hint" id={`${id}-hint`}>
          {hint}
        </div>
      )}
      {error && (
        <div className="field-error" id={`${id}-error`}>
          {error}
        </div>
      )}
    </div>
  );
}

export function PageHeader({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="page-header">
      <h1>{title}</h1>
      {children && <div className="actions">{children}</div>}
    </div>
  );
}

export function TableWrap({ children, label }: { children: ReactNode; label: string }) {
  return (
    <div className="table-wrap" role="region" aria-label={label} tabIndex={0}>
      <table>{children}</table>
    </div>
  );
}

/** A number field's value: a number when it is one, else the text itself (the API says what is wrong);
 * undefined when empty. */
export function num(text: string): number | undefined {
  if (!text.trim()) return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : (text as unknown as number);
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status">
      Loading {what}…
    </p>
  );
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** Cursor paging: the stack of cursors that led to the current page. */
export function useCursor<C = string>() {
  const [stack, setStack] = useState<(C | undefined)[]>([undefined]);
  const cursor = stack[stack.length - 1];
  return {
    cursor,
    page: stack.length,
    next: (c: C) => setStack((s) => [...s, c]),
    prev: () => setStack((s) => (s.length > 1 ? s.slice(0, -1) : s)),
    reset: () => setStack([undefined]),
  };
}

export function Pager(props: { page: number; hasNext: boolean; onPrev: () => void; onNext: () => void }) {
  return (
    <nav className="pager" aria-label="Pages">
      <button type="button" onClick={props.onPrev} disabled={props.page <= 1}>
        ← Previous
      </button>
      <span>Page {props.page}</span>
      <button type="button" onClick={props.onNext} disabled={!props.hasNext}>
        Next →
      </button>
    </nav>
  );
}

/** Pretty JSON for display. */
export function Json({ value }: { value: unknown }) {
  return <pre className="json">{JSON.stringify(value, null, 2)}</pre>;
}

/** Parse a JSON text field: the value, or throws a message naming the field. */
export function parseJsonField(text: string, label: string): unknown {
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${label} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Tags typed as "team-b, pci": the list the API takes (it refuses a bad one, naming tags[i]). */
export function tagsOf(text: string): string[] {
  return text.split(",").map((t) => t.trim()).filter(Boolean);
}

/** A resource's tags field: shown as "a, b", sent as a list; the API's error for tags shows under it. */
export function TagsField(props: { value: string; onChange: (text: string) => void; error: unknown; readOnly?: boolean }) {
  return (
    <Field label="Tags" error={fieldError(props.error, "tags")} hint="comma separated, e.g. team-b, pci (lists filter by them)">
      {(p) => <input {...p} readOnly={props.readOnly} value={props.value} onChange={(e) => props.onChange(e.target.value)} />}
    </Field>
  );
}
