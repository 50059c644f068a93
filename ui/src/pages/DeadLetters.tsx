import type { DeadLetterSummary } from "@junction/sdk";
import { useState, type FormEvent } from "react";
import { Link, useParams } from "react-router";
import { useSession } from "../session";
import { ReplayStarter, type ReplaySelection } from "./Replays";
import { ErrorMessage, Field, fieldError, formatTime, Json, Loading, PageHeader, Pager, TableWrap, useCursor, useLoad } from "../ui";

interface Filters {
  api: string;
  stage: "" | "processors" | "egress";
  code: string;
  correlation_id: string;
  from: string;
  to: string;
}

const iso = (local: string) => (local ? new Date(local).toISOString() : undefined);

/** Dead letters: the calls that failed for good, newest first, with filters; one opens to its detail.
 *  Admins choose some (or take every one the filters match) and replay them. */
export function DeadLettersPage() {
  const { org = "" } = useParams();
  const { client, canWrite } = useSession();
  const [chosen, setChosen] = useState<string[]>([]);
  const [replayAll, setReplayAll] = useState(false);
  const empty: Filters = { api: "", stage: "", code: "", correlation_id: "", from: "", to: "" };
  const [filters, setFilters] = useState<Filters>(empty);
  const [applied, setApplied] = useState<Filters>(empty);
  const [openId, setOpenId] = useState<string | null>(null);
  const paging = useCursor<string>();
  const page = useLoad(
    () =>
      client.listDeadLetters(org, {
        api: applied.api || undefined, stage: applied.stage || undefined, code: applied.code || undefined,
        correlation_id: applied.correlation_id || undefined, from: iso(applied.from), to: iso(applied.to),
        limit: 50, cursor: paging.cursor,
      }),
    [org, applied, paging.cursor, client],
  );
  const detail = useLoad(() => (openId ? client.getDeadLetter(org, openId) : Promise.resolve(undefined)), [org, openId, client]);
  const set = (k: keyof Filters, v: string) => setFilters((f) => ({ ...f, [k]: v }));
  function submit(e: FormEvent) {
    e.preventDefault();
    paging.reset();
    setApplied(filters);
    setChosen([]);
  }
  const choose = (id: string, on: boolean) => setChosen((c) => (on ? [...c, id] : c.filter((x) => x !== id)));
  const filter: Record<string, string> = {};
  if (applied.api) filter.api = applied.api;
  if (applied.stage) filter.stage = applied.stage;
  if (applied.code) filter.code = applied.code;
  if (applied.from) filter.from = iso(applied.from) as string;
  if (applied.to) filter.to = iso(applied.to) as string;
  const selection: ReplaySelection = replayAll ? { filter } : { ids: chosen };
  const items = (page.data?.items ?? []) as DeadLetterSummary[];
  return (
    <section>
      <PageHeader title="Dead letters">
        <Link to={`/orgs/${org}/replays`}>Replay jobs →</Link>
      </PageHeader>
      <form className="filters" onSubmit={submit} noValidate aria-label="Filter dead letters">
        <Field label="API id" error={fieldError(page.error, "api")}>{(p) => <input {...p} value={filters.api} onChange={(e) => set("api", e.target.value)} />}</Field>
        <Field label="Stage">
          {(p) => (
            <select {...p} value={filters.stage} onChange={(e) => set("stage", e.target.value)}>
              <option value="">any</option><option value="processors">processors</option><option value="egress">egress</option>
            </select>
          )}
        </Field>
        <Field label="Error code" error={fieldError(page.error, "code")}>{(p) => <input {...p} value={filters.code} onChange={(e) => set("code", e.target.value)} />}</Field>
        <Field label="Correlation id" error={fieldError(page.error, "correlation_id")}>{(p) => <input {...p} value={filters.correlation_id} onChange={(e) => set("correlation_id", e.target.value)} />}</Field>
        <Field label="Failed from" error={fieldError(page.error, "from")}>{(p) => <input {...p} type="datetime-local" value={filters.from} onChange={(e) => set("from", e.target.value)} />}</Field>
        <Field label="Failed before" error={fieldError(page.error, "to")}>{(p) => <input {...p} type="datetime-local" value={filters.to} onChange={(e) => set("to", e.target.value)} />}</Field>
        <button type="submit">Filter</button>
      </form>
      <ErrorMessage error={page.error} claimed={["api", "code", "correlation_id", "from", "to"]} />
      {page.loading && !page.data ? <Loading what="dead letters" /> : (
        <>
          <TableWrap label="Dead letters">
            <thead><tr>{canWrite && <th><span className="sr-only">Replay</span></th>}<th>Failed</th><th>Stage</th><th>Error</th><th>Attempt</th><th>Correlation id</th><th><span className="sr-only">Detail</span></th></tr></thead>
            <tbody>
              {items.map((d) => (
                <tr key={d.id}>
                  {canWrite && (
                    <td>
                      <input type="checkbox" aria-label={`Choose ${d.correlation_id} for replay`} disabled={replayAll}
                        checked={chosen.includes(d.id)} onChange={(e) => choose(d.id, e.target.checked)} />
                    </td>
                  )}
                  <td>{formatTime(d.failed_at)}</td>
                  <td>{d.stage}</td>
                  <td><code>{d.error_code}</code> {d.error_message}</td>
                  <td>{d.attempt}</td>
                  <td><code className="break">{d.correlation_id}</code></td>
                  <td><button type="button" onClick={() => setOpenId(openId === d.id ? null : d.id)} aria-expanded={openId === d.id}>
                    {openId === d.id ? "Hide" : "Detail"}</button></td>
                </tr>
              ))}
              {items.length === 0 && <tr><td colSpan={canWrite ? 7 : 6}>No dead letters match.</td></tr>}
            </tbody>
          </TableWrap>
          <Pager page={paging.page} hasNext={!!page.data?.next_cursor} onPrev={paging.prev}
            onNext={() => page.data?.next_cursor && paging.next(page.data.next_cursor)} />
        </>
      )}
      {canWrite && <ReplayStarter org={org} selection={selection} allMatching={replayAll} onAllMatching={setReplayAll} />}
      {openId && (
        <section className="card" aria-label="Dead letter detail">
          <h2>Dead letter {openId}</h2>
          <ErrorMessage error={detail.error} />
          {detail.data ? <Json value={detail.data} /> : !detail.error && <Loading what="the dead letter" />}
        </section>
      )}
    </section>
  );
}
