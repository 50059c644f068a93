/**
 * Replay of dead letters (docs/replay.md): a dry run first (what would be sent), then a job that sends them
 * back into the pipeline; its page follows the job's progress and each message's outcome until it is done.
 */
import type { JunctionClient, ReplayCreate } from "@junction/sdk";
import { useEffect, useState, type FormEvent } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { useSession } from "../session";
import {
  ErrorMessage, Field, fieldError, formatTime, Loading, num, PageHeader, Pager, TableWrap, useAction, useCursor, useLoad,
} from "../ui";

type Job = Awaited<ReturnType<JunctionClient["getReplay"]>>;
type Progress = Job["progress"];

/** What to replay: chosen dead letters by id, or every one matching the dead-letter filters. */
export type ReplaySelection = { ids: string[] } | { filter: Record<string, string> };

interface DryRun {
  count: number;
  ids: string[];
  already_done: string[];
}

const POLL_MS = 1000;

function describe(sel: ReplaySelection): string {
  if ("ids" in sel) return `${sel.ids.length} chosen dead letter${sel.ids.length === 1 ? "" : "s"}`;
  const parts = Object.entries(sel.filter).map(([k, v]) => `${k} ${v}`);
  return parts.length ? `every dead letter with ${parts.join(", ")}` : "every dead letter of the organisation";
}

/** On the dead-letters page (admins): dry run, then start the job and open its page. */
export function ReplayStarter(props: {
  org: string; selection: ReplaySelection; allMatching: boolean; onAllMatching: (on: boolean) => void;
}) {
  const { org, selection } = props;
  const { client } = useSession();
  const navigate = useNavigate();
  const [config, setConfig] = useState<"current" | "original">("current");
  const [rate, setRate] = useState("");
  const [force, setForce] = useState(false);
  const [dry, setDry] = useState<DryRun | null>(null);
  const action = useAction();
  const key = JSON.stringify([selection, config, rate, force]);
  // A dry run answers for one selection and its options; changing them asks for a new one.
  useEffect(() => setDry(null), [key]);

  function body(dryRun: boolean): ReplayCreate {
    const b: Record<string, unknown> = { ...selection, config, force, dry_run: dryRun };
    if (rate.trim()) b.rate_per_second = num(rate);
    return b as ReplayCreate;
  }

  async function dryRun(e?: FormEvent) {
    e?.preventDefault();
    const r = await action.run(() => client.createReplay(org, body(true)));
    if (r) setDry(r as unknown as DryRun);
  }

  async function start() {
    const job = (await action.run(() => client.createReplay(org, body(false)))) as { id?: string } | undefined;
    if (job?.id) navigate(`/orgs/${org}/replays/${job.id}`);
  }

  const nothing = "ids" in selection && selection.ids.length === 0;
  return (
    <form className="card" onSubmit={dryRun} noValidate aria-label="Replay dead letters">
      <h2>Replay</h2>
      <p>
        Replays {describe(selection)}. Fix the cause first (the connector, the API, the upstream); a dry run
        then shows what would be sent, and nothing is sent until you start the job.
      </p>
      <ErrorMessage error={action.error} claimed={["config", "rate_per_second"]} />
      <label className="check">
        <input type="checkbox" checked={props.allMatching} onChange={(e) => props.onAllMatching(e.target.checked)} />
        Every dead letter the filters match, not only the chosen ones (the correlation id filter does not apply)
      </label>
      <div className="filters">
        <Field label="Configuration" error={fieldError(action.error, "config")}>
          {(p) => (
            <select {...p} value={config} onChange={(e) => setConfig(e.target.value as "current" | "original")}>
              <option value="current">current (the fixed API and connector)</option>
              <option value="original">original (egress failures keep their connector version)</option>
            </select>
          )}
        </Field>
        <Field label="Messages per second" error={fieldError(action.error, "rate_per_second")} hint="1 to 1000; empty: the default">
          {(p) => <input {...p} inputMode="numeric" value={rate} onChange={(e) => setRate(e.target.value)} />}
        </Field>
        <label className="check">
          <input type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} />
          Force (also calls that already went through)
        </label>
      </div>
      <div className="buttons">
        <button type="submit" disabled={action.busy || nothing}>Dry run</button>
        <button type="button" className="primary" disabled={action.busy || !dry || dry.count === 0} onClick={start}>
          {dry ? `Start replay of ${dry.count}` : "Start replay"}
        </button>
      </div>
      {nothing && <p className="muted">Choose dead letters in the table, or replay those matching the filters.</p>}
      {dry && (
        <p role="status" data-testid="dry-run">
          Dry run: {dry.count} dead letter{dry.count === 1 ? "" : "s"} would be replayed
          {dry.already_done.length > 0 && `; ${dry.already_done.length} already went through and would be skipped unless forced`}.
        </p>
      )}
    </form>
  );
}

function ProgressBar({ progress }: { progress: Progress }) {
  const { total, finished } = progress;
  return (
    <div className="progress">
      <progress max={Math.max(total, 1)} value={finished} aria-label="Finished messages" />
      <span>
        {finished}/{total} finished: {progress.sent} sent, {progress.answered} answered, {progress.succeeded} succeeded,{" "}
        {progress.failed} failed, {progress.skipped} skipped, {progress.pending} pending
      </span>
    </div>
  );
}

/** The organisation's replay jobs, newest first. */
export function ReplaysPage() {
  const { org = "" } = useParams();
  const { client } = useSession();
  const paging = useCursor<string>();
  const page = useLoad(() => client.listReplays(org, { limit: 25, cursor: paging.cursor }), [org, paging.cursor, client]);
  const items = page.data?.items ?? [];
  const running = items.some((j) => j.status === "running");
  useEffect(() => {
    if (!running) return;
    const t = window.setTimeout(page.reload, POLL_MS * 2);
    return () => window.clearTimeout(t);
  }, [running, page.data, page.reload]);
  return (
    <section>
      <PageHeader title="Replay jobs">
        <Link to={`/orgs/${org}/dead-letters`}>Dead letters →</Link>
      </PageHeader>
      <ErrorMessage error={page.error} />
      {page.loading && !page.data ? <Loading what="replay jobs" /> : (
        <>
          <TableWrap label="Replay jobs">
            <thead><tr><th>Started</th><th>By</th><th>Status</th><th>Progress</th><th>Config</th><th>Rate</th></tr></thead>
            <tbody>
              {items.map((j) => (
                <tr key={j.id}>
                  <td><Link to={`/orgs/${org}/replays/${j.id}`}>{formatTime(j.created_at)}</Link></td>
                  <td>{j.created_by ?? ""}</td>
                  <td>{j.status === "running" ? <span className="warn">running</span> : "done"}</td>
                  <td>{j.progress.finished}/{j.progress.total} ({j.progress.succeeded} succeeded, {j.progress.failed} failed, {j.progress.skipped} skipped)</td>
                  <td>{j.config}{j.force ? ", forced" : ""}</td>
                  <td>{j.rate_per_second}/s</td>
                </tr>
              ))}
              {items.length === 0 && <tr><td colSpan={6}>No replay jobs yet. Start one from the dead letters.</td></tr>}
            </tbody>
          </TableWrap>
          <Pager page={paging.page} hasNext={!!page.data?.next_cursor} onPrev={paging.prev}
            onNext={() => page.data?.next_cursor && paging.next(page.data.next_cursor)} />
        </>
      )}
    </section>
  );
}

/** One job: its progress, polled while it runs, and each message's outcome. */
export function ReplayPage() {
  const { org = "", id = "" } = useParams();
  const { client } = useSession();
  const job = useLoad(() => client.getReplay(org, id), [org, id, client]);
  const running = job.data?.status === "running";
  useEffect(() => {
    if (!running) return;
    const t = window.setTimeout(job.reload, POLL_MS);
    return () => window.clearTimeout(t);
  }, [running, job.data, job.reload]);
  if (job.loading && !job.data) return <Loading what="the replay job" />;
  const j = job.data;
  return (
    <section>
      <PageHeader title="Replay job">
        <Link to={`/orgs/${org}/replays`}>← All replay jobs</Link>
      </PageHeader>
      <ErrorMessage error={job.error} />
      {j && (
        <>
          <div className="card">
            <p>
              <strong data-testid="replay-status">{j.status === "running" ? "Running" : "Done"}</strong>
              {" · "}started {formatTime(j.created_at)}{j.created_by ? ` by ${j.created_by}` : ""}
              {j.finished_at ? ` · finished ${formatTime(j.finished_at)}` : ""}
              {" · "}configuration {j.config}{j.force ? ", forced" : ""} · {j.rate_per_second} per second
            </p>
            <ProgressBar progress={j.progress} />
          </div>
          <TableWrap label="Messages">
            <thead>
              <tr><th>Dead letter</th><th>Was</th><th>Outcome</th><th>Answer</th><th>Attempt</th><th>Config</th><th>Answered</th></tr>
            </thead>
            <tbody>
              {j.items.map((m) => (
                <tr key={m.dead_letter_id}>
                  <td><code className="break">{m.correlation_id}</code></td>
                  <td>{m.letter.stage}: <code>{m.letter.error_code}</code> (attempt {m.letter.attempt})</td>
                  <td data-testid="outcome" className={m.outcome === "succeeded" ? "" : m.outcome === "failed" || m.outcome === "unanswered" ? "warn" : "muted"}>
                    {m.outcome.replace(/_/g, " ")}
                  </td>
                  <td>
                    {m.status ?? ""} {m.code ? <code>{m.code}</code> : null} {m.message ?? ""}
                    {m.new_dead_letter_id ? <> (dead-lettered again: <code className="break">{m.new_dead_letter_id}</code>)</> : null}
                  </td>
                  <td>{m.attempt ?? ""}</td>
                  <td>{m.config ?? ""}</td>
                  <td>{formatTime(m.answered_at)}</td>
                </tr>
              ))}
              {j.items.length === 0 && <tr><td colSpan={7}>No dead letter matched.</td></tr>}
            </tbody>
          </TableWrap>
        </>
      )}
    </section>
  );
}
