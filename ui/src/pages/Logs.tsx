import type { RequestLog } from "@junction/sdk";
import { Fragment, useState, type FormEvent } from "react";
import { useParams, useSearchParams } from "react-router";
import { useClient } from "../session";
import { ErrorMessage, Field, fieldError, formatTime, Json, Loading, PageHeader, Pager, TableWrap, useCursor, useLoad } from "../ui";

const KEYS = ["api", "status", "code", "correlation_id", "from", "to"] as const;
type Filters = Record<(typeof KEYS)[number], string>;

function iso(local: string): string | undefined {
  return local ? new Date(local).toISOString() : undefined;
}

/** The request log: one row per call, newest first, with filters; a row opens to its detail. */
export function LogsPage() {
  const { org = "" } = useParams();
  const client = useClient();
  const [params, setParams] = useSearchParams();
  const applied = Object.fromEntries(KEYS.map((k) => [k, params.get(k) ?? ""])) as Filters;
  const [filters, setFilters] = useState<Filters>(applied);
  const [open, setOpen] = useState<string | null>(null);
  const paging = useCursor<string>();
  const key = params.toString();
  const page = useLoad(
    () =>
      client.listLogs(org, {
        api: applied.api || undefined, status: applied.status || undefined, code: applied.code || undefined,
        correlation_id: applied.correlation_id || undefined, from: iso(applied.from), to: iso(applied.to),
        limit: 50, cursor: paging.cursor,
      }),
    [org, key, paging.cursor, client],
  );
  function apply(next: Filters) {
    paging.reset();
    setFilters(next);
    setParams(Object.fromEntries(Object.entries(next).filter(([, v]) => v)));
  }
  function submit(e: FormEvent) {
    e.preventDefault();
    apply(filters);
  }
  const set = (k: keyof Filters, v: string) => setFilters((f) => ({ ...f, [k]: v }));
  const items = (page.data?.items ?? []) as RequestLog[];
  return (
    <section>
      <PageHeader title="Request logs" />
      <form className="filters" onSubmit={submit} noValidate aria-label="Filter the request log">
        <Field label="API id" error={fieldError(page.error, "api")}>{(p) => <input {...p} value={filters.api} onChange={(e) => set("api", e.target.value)} />}</Field>
        <Field label="Status (404 or 5xx)" error={fieldError(page.error, "status")}>{(p) => <input {...p} value={filters.status} onChange={(e) => set("status", e.target.value)} />}</Field>
        <Field label="Error code" error={fieldError(page.error, "code")}>{(p) => <input {...p} value={filters.code} onChange={(e) => set("code", e.target.value)} />}</Field>
        <Field label="Correlation id" error={fieldError(page.error, "correlation_id")}>{(p) => <input {...p} value={filters.correlation_id} onChange={(e) => set("correlation_id", e.target.value)} />}</Field>
        <Field label="From" error={fieldError(page.error, "from")}>{(p) => <input {...p} type="datetime-local" value={filters.from} onChange={(e) => set("from", e.target.value)} />}</Field>
        <Field label="To" error={fieldError(page.error, "to")}>{(p) => <input {...p} type="datetime-local" value={filters.to} onChange={(e) => set("to", e.target.value)} />}</Field>
        <button type="submit">Filter</button>
      </form>
      <ErrorMessage error={page.error} claimed={[...KEYS]} />
      {page.loading && !page.data ? <Loading what="the request log" /> : (
        <>
          <TableWrap label="Requests">
            <thead><tr><th>When</th><th>Method</th><th>Path</th><th>Status</th><th>Error</th><th>Answered by</th><th>Latency</th><th>Correlation id</th></tr></thead>
            <tbody>
              {items.map((r) => (
                <Fragment key={r.id}>
                  <tr>
                    <td>{formatTime(r.at)}</td>
                    <td>{r.method}</td>
                    <td><code className="break">{r.path}</code></td>
                    <td className={r.status && r.status >= 400 ? "warn" : ""}>{r.status ?? "—"}</td>
                    <td>{r.error_code ?? ""}</td>
                    {/* ingress: refused before the call entered the pipeline (a 401, a 429...) */}
                    <td>{r.stage ?? ""}</td>
                    <td>{r.latency_ms != null ? `${Math.round(r.latency_ms)} ms` : ""}</td>
                    <td>
                      <button type="button" className="link" aria-expanded={open === r.id} onClick={() => setOpen(open === r.id ? null : r.id)}>
                        {r.correlation_id}
                      </button>
                    </td>
                  </tr>
                  {open === r.id && (
                    <tr className="detail">
                      <td colSpan={8}>
                        <button type="button" onClick={() => apply({ ...filters, correlation_id: r.correlation_id })}>
                          Only this correlation id
                        </button>
                        <Json value={r} />
                      </td>
                    </tr>
                  )}
                </Fragment>
              ))}
              {items.length === 0 && <tr><td colSpan={8}>No requests match.</td></tr>}
            </tbody>
          </TableWrap>
          <Pager page={paging.page} hasNext={!!page.data?.next_cursor} onPrev={paging.prev}
            onNext={() => page.data?.next_cursor && paging.next(page.data.next_cursor)} />
        </>
      )}
    </section>
  );
}
