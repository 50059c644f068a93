/** Alert history (docs/alerts.md), newest first, filtered by state; admins acknowledge a firing alert. */
import type { Schemas } from "@junction/sdk";
import { Fragment, useState } from "react";
import { Link, useParams } from "react-router";
import { useSession } from "../session";
import { ErrorMessage, Field, formatTime, Loading, PageHeader, Pager, TableWrap, useAction, useCursor, useLoad } from "../ui";
import { alertBase } from "./AlertRules";

type Alert = Schemas["Alert"];

export function AlertsPage() {
  const scope = useParams().org ?? null;
  const { client, canWrite } = useSession();
  const [state, setState] = useState<"" | "firing" | "resolved">("");
  const [open, setOpen] = useState<string | null>(null);
  const paging = useCursor<string>();
  const page = useLoad(
    () => client.listAlerts(scope, { state: state || undefined, limit: 50, cursor: paging.cursor }),
    [scope, state, paging.cursor, client],
  );
  const ack = useAction();
  const items = (page.data?.items ?? []) as Alert[];
  const base = alertBase(scope);

  async function acknowledge(a: Alert) {
    if (await ack.run(() => client.ackAlert(scope, a.id))) page.reload();
  }

  return (
    <section>
      <PageHeader title={scope === null ? "Global alerts" : "Alerts"}>
        <Link to={`${base}/alert-rules`}>Alert rules →</Link>
      </PageHeader>
      <div className="filters">
        <Field label="State">
          {(p) => (
            <select {...p} value={state} onChange={(e) => { setState(e.target.value as typeof state); paging.reset(); }}>
              <option value="">any</option>
              <option value="firing">firing</option>
              <option value="resolved">resolved</option>
            </select>
          )}
        </Field>
      </div>
      <ErrorMessage error={page.error ?? ack.error} />
      {page.loading && !page.data ? <Loading what="alerts" /> : (
        <>
          <TableWrap label="Alerts">
            <thead>
              <tr><th>Rule</th><th>State</th><th>Condition</th><th>Value</th><th>Started</th><th>Resolved</th><th>Acknowledged</th><th>Notifications</th></tr>
            </thead>
            <tbody>
              {items.map((a) => (
                <Fragment key={a.id}>
                  <tr>
                    <td><Link to={`${base}/alert-rules/${a.rule_id}`}>{a.rule_name}</Link> (v{a.rule_version})</td>
                    <td>{a.state === "firing" ? <span className="warn">firing</span> : "resolved"}</td>
                    <td><code>{a.metric} {a.comparison} {a.threshold}</code></td>
                    <td>{a.value ?? "—"}</td>
                    <td>{formatTime(a.started_at)}</td>
                    <td>{formatTime(a.resolved_at)}</td>
                    <td>
                      {a.acked_at ? `${formatTime(a.acked_at)}${a.acked_by ? ` by ${a.acked_by}` : ""}` : canWrite && a.state === "firing" ? (
                        <button type="button" onClick={() => acknowledge(a)} disabled={ack.busy}>Acknowledge</button>
                      ) : "—"}
                      {a.escalated_at && <div className="warn">escalated {formatTime(a.escalated_at)}</div>}
                    </td>
                    <td>
                      <button type="button" className="link" aria-expanded={open === a.id} onClick={() => setOpen(open === a.id ? null : a.id)}>
                        {(a.notifications ?? []).length} notification{(a.notifications ?? []).length === 1 ? "" : "s"}{(a.notifications ?? []).some((n) => n.status === "failed") ? " (some failed)" : ""}
                      </button>
                    </td>
                  </tr>
                  {open === a.id && (
                    <tr className="detail">
                      <td colSpan={8}>
                        <ul>
                          {(a.notifications ?? []).map((n, i) => (
                            <li key={i}>
                              {n.event} by {n.channel}{n.target ? ` to ${n.target}` : ""}: <strong>{n.status}</strong>
                              {" "}after {n.attempts} attempt{n.attempts === 1 ? "" : "s"}{n.error ? ` (${n.error})` : ""}
                            </li>
                          ))}
                          {(a.notifications ?? []).length === 0 && <li>No notifications.</li>}
                        </ul>
                      </td>
                    </tr>
                  )}
                </Fragment>
              ))}
              {items.length === 0 && <tr><td colSpan={8}>{state ? `No ${state} alerts.` : "No alerts yet."}</td></tr>}
            </tbody>
          </TableWrap>
          <Pager page={paging.page} hasNext={!!page.data?.next_cursor} onPrev={paging.prev}
            onNext={() => page.data?.next_cursor && paging.next(page.data.next_cursor)} />
        </>
      )}
    </section>
  );
}
