import type { AuditEntry } from "@junction/sdk";
import { Fragment, useState, type FormEvent } from "react";
import { useParams } from "react-router";
import { DiffTable } from "../components/Versions";
import { useClient } from "../session";
import { ErrorMessage, Field, formatTime, Loading, PageHeader, Pager, TableWrap, useCursor, useLoad } from "../ui";

type ResourceType = "" | "org" | "user" | "api" | "connector";

interface Filters {
  actor: string;
  resource_type: ResourceType;
  resource_id: string;
  since: string;
  until: string;
}

/** What changed between an entry's before and after, field by field (top-level keys). */
function changesOf(entry: AuditEntry) {
  const before = (entry.before ?? {}) as Record<string, unknown>;
  const after = (entry.after ?? {}) as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].filter(
    (k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]),
  );
  return keys.sort().map((field) => ({ field, before: before[field], after: after[field] }));
}

/** The audit trail of the organisation, newest first, with filters; each entry opens to its changes. */
export function AuditPage() {
  const { org = "" } = useParams();
  const client = useClient();
  const empty: Filters = { actor: "", resource_type: "", resource_id: "", since: "", until: "" };
  const [filters, setFilters] = useState<Filters>(empty);
  const [applied, setApplied] = useState<Filters>(empty);
  const [open, setOpen] = useState<number | null>(null);
  const paging = useCursor<number>();
  const page = useLoad(
    () =>
      client.audit({
        org,
        actor: applied.actor || undefined,
        resource_type: applied.resource_type || undefined,
        resource_id: applied.resource_id || undefined,
        since: applied.since ? new Date(applied.since).toISOString() : undefined,
        until: applied.until ? new Date(applied.until).toISOString() : undefined,
        limit: 50,
        cursor: paging.cursor,
      }),
    [org, applied, paging.cursor, client],
  );
  const set = (k: keyof Filters, v: string) => setFilters((f) => ({ ...f, [k]: v }));
  function submit(e: FormEvent) {
    e.preventDefault();
    paging.reset();
    setApplied(filters);
  }
  const nextCursor = (page.data as { next_cursor?: number | null } | undefined)?.next_cursor;
  return (
    <section>
      <PageHeader title="Audit log" />
      <form className="filters" onSubmit={submit} aria-label="Filter the audit log">
        <Field label="Actor (e-mail or id)">{(p) => <input {...p} value={filters.actor} onChange={(e) => set("actor", e.target.value)} />}</Field>
        <Field label="Resource type">
          {(p) => (
            <select {...p} value={filters.resource_type} onChange={(e) => set("resource_type", e.target.value)}>
              <option value="">any</option>
              {["org", "user", "api", "connector"].map((t) => <option key={t}>{t}</option>)}
            </select>
          )}
        </Field>
        <Field label="Resource id">{(p) => <input {...p} value={filters.resource_id} onChange={(e) => set("resource_id", e.target.value)} />}</Field>
        <Field label="Since">{(p) => <input {...p} type="datetime-local" value={filters.since} onChange={(e) => set("since", e.target.value)} />}</Field>
        <Field label="Until">{(p) => <input {...p} type="datetime-local" value={filters.until} onChange={(e) => set("until", e.target.value)} />}</Field>
        <button type="submit">Filter</button>
      </form>
      <ErrorMessage error={page.error} />
      {page.loading && !page.data ? <Loading what="the audit log" /> : (
        <>
          <TableWrap label="Audit entries">
            <thead><tr><th>When</th><th>Who</th><th>Action</th><th>Resource</th><th>Request</th><th><span className="sr-only">Details</span></th></tr></thead>
            <tbody>
              {page.data?.items.map((a) => (
                <Fragment key={a.id}>
                  <tr>
                    <td>{formatTime(a.at)}</td>
                    <td>{a.actor_email ?? a.actor_id ?? "—"}</td>
                    <td>{a.action}</td>
                    <td>{a.resource_type} <code className="break">{a.resource_id}</code></td>
                    <td><code>{a.request_id ?? ""}</code></td>
                    <td>
                      <button type="button" aria-expanded={open === a.id} onClick={() => setOpen(open === a.id ? null : a.id)}>
                        {open === a.id ? "Hide" : "Changes"}
                      </button>
                    </td>
                  </tr>
                  {open === a.id && (
                    <tr className="detail">
                      <td colSpan={6}>
                        <DiffTable diff={{ id: a.resource_id, from: 0, to: 0, changes: changesOf(a) }} labels={["Before", "After"]} />
                      </td>
                    </tr>
                  )}
                </Fragment>
              ))}
              {page.data?.items.length === 0 && <tr><td colSpan={6}>No entries.</td></tr>}
            </tbody>
          </TableWrap>
          <Pager page={paging.page} hasNext={!!nextCursor} onPrev={paging.prev} onNext={() => nextCursor && paging.next(nextCursor)} />
        </>
      )}
    </section>
  );
}
