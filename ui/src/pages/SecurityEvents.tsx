import { useState, type FormEvent } from "react";
import { useClient } from "../session";
import { ErrorMessage, Field, Json, Loading, PageHeader, Pager, TableWrap, useCursor, useLoad } from "../ui";

/** Global admin: security events (failed and blocked logins, refused callers…), newest first. */
export function SecurityEventsPage() {
  const client = useClient();
  const [filters, setFilters] = useState({ org: "", kind: "" });
  const [applied, setApplied] = useState(filters);
  const paging = useCursor<string>();
  const events = useLoad(
    () => client.securityEvents({ org: applied.org || undefined, kind: applied.kind || undefined, limit: 50,
      cursor: paging.cursor }),
    [applied, paging.cursor, client],
  );
  function submit(e: FormEvent) {
    e.preventDefault();
    paging.reset();
    setApplied(filters);
  }
  const page = events.data as { items: Record<string, unknown>[]; next_cursor: string | null } | undefined;
  return (
    <section>
      <PageHeader title="Security events" />
      <form className="filters" onSubmit={submit} aria-label="Filter security events">
        <Field label="Organisation (slug or id)">
          {(p) => <input {...p} value={filters.org} onChange={(e) => setFilters({ ...filters, org: e.target.value })} />}
        </Field>
        <Field label="Kind">
          {(p) => <input {...p} value={filters.kind} placeholder="login_failure"
            onChange={(e) => setFilters({ ...filters, kind: e.target.value })} />}
        </Field>
        <button type="submit">Filter</button>
      </form>
      <ErrorMessage error={events.error} />
      {events.loading && !page ? <Loading what="security events" /> : (
        <>
          <TableWrap label="Security events">
            <thead><tr><th>When</th><th>Kind</th><th>Subject</th><th>Source</th><th>Detail</th></tr></thead>
            <tbody>
              {page?.items.map((ev, i) => (
                <tr key={i}>
                  <td>{typeof ev.at_ms === "number" ? new Date(ev.at_ms).toLocaleString() : String(ev.at ?? "")}</td>
                  <td>{String(ev.kind ?? "")}</td>
                  <td>{String(ev.subject ?? "")}</td>
                  <td>{String(ev.source ?? "")}</td>
                  <td><Json value={ev.detail ?? null} /></td>
                </tr>
              ))}
              {page?.items.length === 0 && <tr><td colSpan={5}>No security events.</td></tr>}
            </tbody>
          </TableWrap>
          <Pager page={paging.page} hasNext={!!page?.next_cursor} onPrev={paging.prev}
            onNext={() => page?.next_cursor && paging.next(page.next_cursor)} />
        </>
      )}
    </section>
  );
}
