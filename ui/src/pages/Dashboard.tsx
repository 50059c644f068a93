import { JunctionError, type MetricPoint } from "@junction/sdk";
import { useEffect, useState } from "react";
import { useParams, useSearchParams } from "react-router";
import { LineChart } from "../components/Chart";
import { useClient } from "../session";
import { ErrorMessage, Field, PageHeader } from "../ui";

const KEEP = 90; // windows of 10 s: the last 15 minutes

function merge(points: MetricPoint[], more: MetricPoint[]): MetricPoint[] {
  const byT = new Map(points.map((p) => [p.t, p]));
  for (const p of more) byT.set(p.t, p);
  return [...byT.values()].sort((a, b) => a.t.localeCompare(b.t)).slice(-KEEP);
}

/** Live metrics of the organisation, or of one of its APIs (?api=): the last 15 minutes, then each 10 s
 * window as it settles (SSE). */
export function DashboardPage() {
  const { org = "" } = useParams();
  const client = useClient();
  const [search, setSearch] = useSearchParams();
  const api = search.get("api") ?? "";
  const [apis, setApis] = useState<{ id: string; name: string; path: string }[]>([]);
  const [points, setPoints] = useState<MetricPoint[]>([]);
  const [state, setState] = useState<"connecting" | "live" | "retrying">("connecting");
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    // The organisation's APIs, for the selector (the first 1000: a dashboard per API is picked by name).
    client.listApis(org, { limit: 1000 }).then((page) => setApis(page.items), () => setApis([]));
  }, [org, client]);

  useEffect(() => {
    const abort = new AbortController();
    let retry: number | undefined;
    setPoints([]);
    const from = new Date(Date.now() - KEEP * 10_000).toISOString();
    client
      .metrics(org, api ? { from, step: "10s", api } : { from, step: "10s" })
      .then((m) => !abort.signal.aborted && setPoints((p) => merge(p, m.points)))
      .catch((e) => !abort.signal.aborted && setError(e));
    const connect = () => {
      setState("connecting");
      client
        .streamMetrics(
          org,
          (point) => {
            setState("live");
            setError(null);
            setPoints((p) => merge(p, [point]));
          },
          { signal: abort.signal, api: api || undefined },
        )
        .then(() => {
          if (!abort.signal.aborted) {
            setState("retrying");
            retry = window.setTimeout(connect, 1000); // the server ends a stream after an hour
          }
        })
        .catch((e) => {
          if (abort.signal.aborted) return;
          setError(e);
          if (e instanceof JunctionError && e.status < 500 && e.status !== 429) return; // retrying will not help
          setState("retrying");
          retry = window.setTimeout(connect, 5000);
        });
    };
    // Live as soon as the stream is open, even before the first window settles.
    setState("connecting");
    connect();
    const opened = window.setTimeout(() => setState((s) => (s === "connecting" ? "live" : s)), 1500);
    return () => {
      abort.abort();
      window.clearTimeout(retry);
      window.clearTimeout(opened);
    };
  }, [org, client, api]);

  const times = points.map((p) => p.t);
  const last = points[points.length - 1];
  const total = points.reduce((n, p) => n + p.calls, 0);
  const errors = points.reduce((n, p) => n + p.errors, 0);
  return (
    <section>
      <PageHeader title="Dashboard">
        <span className={`badge ${state}`} role="status" aria-live="polite">
          {state === "live" ? "● live" : state === "connecting" ? "connecting…" : "reconnecting…"}
        </span>
      </PageHeader>
      <div className="filters">
        <Field label="API">
          {(p) => (
            <select {...p} value={api} onChange={(e) => setSearch(e.target.value ? { api: e.target.value } : {})}>
              <option value="">Every API of the organisation</option>
              {apis.map((a) => (
                <option key={a.id} value={a.id}>{`${a.name} (${a.path})`}</option>
              ))}
            </select>
          )}
        </Field>
      </div>
      <ErrorMessage error={error} />
      <div className="tiles">
        <div className="tile"><span>Calls (15 min)</span><strong>{total}</strong></div>
        <div className="tile"><span>Errors (15 min)</span><strong>{errors}</strong></div>
        <div className="tile"><span>Error rate</span><strong>{total ? `${((100 * errors) / total).toFixed(1)} %` : "—"}</strong></div>
        <div className="tile"><span>p95 latency (last 10 s)</span><strong>{last?.latency_ms.p95 != null ? `${Math.round(last.latency_ms.p95)} ms` : "—"}</strong></div>
      </div>
      <div className="charts">
        <LineChart title="Calls per 10 s" times={times} series={[
          { label: "calls", className: "s1", values: points.map((p) => p.calls) },
          { label: "errors", className: "s3", values: points.map((p) => p.errors) },
        ]} />
        <LineChart title="Latency" unit=" ms" times={times} series={[
          { label: "p50", className: "s1", values: points.map((p) => p.latency_ms.p50) },
          { label: "p95", className: "s2", values: points.map((p) => p.latency_ms.p95) },
          { label: "p99", className: "s3", values: points.map((p) => p.latency_ms.p99) },
        ]} />
        <LineChart title="Status classes per 10 s" times={times} series={[
          { label: "2xx", className: "s1", values: points.map((p) => p.status["2xx"]) },
          { label: "4xx", className: "s2", values: points.map((p) => p.status["4xx"]) },
          { label: "5xx", className: "s3", values: points.map((p) => p.status["5xx"]) },
        ]} />
        <LineChart title="Upstream latency p95" unit=" ms" times={times} series={[
          { label: "upstream p95", className: "s2", values: points.map((p) => p.upstream_ms.p95) },
        ]} />
      </div>
    </section>
  );
}
