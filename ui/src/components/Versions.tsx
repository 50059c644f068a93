import type { Diff, JunctionClient, Kind, Version } from "@junction/sdk";
import { useEffect, useState } from "react";
import { useSession } from "../session";
import { ErrorMessage, Field, formatTime, Loading, TableWrap, useAction, useLoad } from "../ui";

function show(value: unknown): string {
  if (value === undefined) return "—";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

/** A side-by-side diff: one row per changed field, version a on the left, b on the right. */
export function DiffTable({ diff, labels }: { diff: Diff; labels?: [string, string] }) {
  const [left, right] = labels ?? [`Version ${diff.from}`, `Version ${diff.to}`];
  if (diff.changes.length === 0) return <p>{labels ? "No changes." : `Versions ${diff.from} and ${diff.to} are the same.`}</p>;
  return (
    <TableWrap label={`Changes: ${left} and ${right}`}>
      <thead>
        <tr><th>Field</th><th>{left}</th><th>{right}</th></tr>
      </thead>
      <tbody>
        {diff.changes.map((c) => (
          <tr key={c.field}>
            <th scope="row"><code>{c.field}</code></th>
            <td className="before"><pre>{show(c.before)}</pre></td>
            <td className="after"><pre>{show(c.after)}</pre></td>
          </tr>
        ))}
      </tbody>
    </TableWrap>
  );
}

/** What is versioned: an API, connector or consumer of an organisation, or an alert rule (org null: global). */
export type Versioned = { org: string; kind: Kind } | { org: string | null; kind: "alert-rules" };

function versionOps(client: JunctionClient, target: Versioned, id: string) {
  if (target.kind === "alert-rules") {
    const org = target.org;
    return {
      list: () => client.listAlertRuleVersions(org, id),
      diff: (a: number, b: number) => client.diffAlertRule(org, id, a, b),
      rollback: (to: number, current: number) => client.rollbackAlertRule(org, id, to, current) as Promise<unknown>,
    };
  }
  const { org, kind } = target;
  return {
    list: () => client.listVersions(org, kind, id),
    diff: (a: number, b: number) => client.diff(org, kind, id, a, b),
    rollback: kind === "consumers" ? undefined
      : (to: number, current: number) => client.rollback(org, kind, id, to, current) as Promise<unknown>,
  };
}

/** The versions of an API, connector, consumer or alert rule: pick two to compare, roll back to one
 *  (all but consumers). */
export function VersionsPanel(props: Versioned & { id: string; current: number; onRolledBack: () => void }) {
  const { client, canWrite } = useSession();
  const { org, kind, id, current } = props;
  const ops = versionOps(client, props, id);
  const versions = useLoad(() => ops.list(), [org, kind, id, current, client]);
  const [a, setA] = useState(Math.max(1, current - 1));
  const [b, setB] = useState(current);
  useEffect(() => {
    setA(Math.max(1, current - 1));
    setB(current);
  }, [current]);
  const diff = useLoad<Diff | undefined>(
    () => (a && b && a !== b ? ops.diff(a, b) : Promise.resolve(undefined)),
    [org, kind, id, a, b, current, client],
  );
  const rollback = useAction();

  async function rollTo(v: Version) {
    const roll = ops.rollback;
    if (!roll) return;
    if (!window.confirm(`Make a new version ${current + 1} equal to version ${v.version}?`)) return;
    if (await rollback.run(() => roll(v.version, current))) props.onRolledBack();
  }

  const list = versions.data ?? [];
  return (
    <section className="card" aria-labelledby={`versions-${id}`}>
      <h2 id={`versions-${id}`}>Versions</h2>
      <ErrorMessage error={versions.error ?? rollback.error} />
      {versions.loading && !versions.data ? <Loading what="versions" /> : (
        <TableWrap label="Versions">
          <thead><tr><th>Version</th><th>Saved</th><th>By</th>{canWrite && ops.rollback && <th>Actions</th>}</tr></thead>
          <tbody>
            {[...list].reverse().map((v) => (
              <tr key={v.version}>
                <td>v{v.version}{v.version === current ? " (current)" : ""}</td>
                <td>{formatTime(v.created_at)}</td>
                <td title={v.created_by ?? undefined}>{v.created_by_email ?? v.created_by ?? ""}</td>
                {canWrite && ops.rollback && (
                  <td className="buttons">
                    {v.version !== current && (
                      <button type="button" onClick={() => rollTo(v)} disabled={rollback.busy}>
                        Roll back to v{v.version}
                      </button>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </TableWrap>
      )}
      {list.length > 1 && (
        <>
          <h3>Compare</h3>
          <div className="filters">
            <Field label="From version">
              {(p) => (
                <select {...p} value={a} onChange={(e) => setA(Number(e.target.value))}>
                  {list.map((v) => <option key={v.version} value={v.version}>v{v.version}</option>)}
                </select>
              )}
            </Field>
            <Field label="To version">
              {(p) => (
                <select {...p} value={b} onChange={(e) => setB(Number(e.target.value))}>
                  {list.map((v) => <option key={v.version} value={v.version}>v{v.version}</option>)}
                </select>
              )}
            </Field>
          </div>
          <ErrorMessage error={diff.error} />
          {a === b ? <p>Choose two different versions.</p> : diff.data ? <DiffTable diff={diff.data} /> : <Loading what="the diff" />}
        </>
      )}
    </section>
  );
}
