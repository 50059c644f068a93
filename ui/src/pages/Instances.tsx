import { useEffect } from "react";
import type { InstanceList } from "@junction/sdk";
import { useClient } from "../session";
import { ErrorMessage, Loading, PageHeader, TableWrap, formatTime, useLoad } from "../ui";

const REFRESH_MS = 2000;
// Instances report every second: one silent for longer is stalled or killed (it leaves the list at 5 s).
const SILENT_MS = 2000;

/** Global admin: the running ingress, processors and egress instances, and whether each has applied the
 * configuration (GET /api/v1/instances), refreshed every 2 s. */
export function InstancesPage() {
  const client = useClient();
  const list = useLoad<InstanceList>(() => client.instances(), [client]);
  const { reload } = list;
  useEffect(() => {
    const timer = setInterval(reload, REFRESH_MS);
    return () => clearInterval(timer);
  }, [reload]);
  const data = list.data;
  const behind = data?.items.filter((i) => !i.applied).length ?? 0;
  const services = new Set<string>(data?.items.map((i) => i.service));
  const missing = ["ingress", "processors", "egress"].filter((s) => !services.has(s));
  return (
    <section>
      <PageHeader title="Instances" />
      <ErrorMessage error={list.error} />
      {!data ? <Loading what="the instances" /> : (
        <>
          <p role="status" className={behind || missing.length ? "error" : "notice"}>
            {missing.length ? `No ${missing.join(", ")} instance is running. ` : ""}
            {behind ? `${behind} of ${data.items.length} instances behind the configuration (position ${data.config_offset}).`
              : `Every instance has applied the configuration (position ${data.config_offset}).`}
          </p>
          <TableWrap label="Instances">
            <thead>
              <tr><th>Service</th><th>Instance</th><th>Host</th><th>PID</th><th>Started</th><th>Position</th><th>State</th><th>Last report</th></tr>
            </thead>
            <tbody>
              {data.items.map((i) => (
                <tr key={`${i.service}/${i.instance}/${i.started_at}`}>
                  <td>{i.service}</td>
                  <td>{i.instance}</td>
                  <td>{i.host}</td>
                  <td>{i.pid}</td>
                  <td>{formatTime(i.started_at)}</td>
                  <td>{i.config_offset}</td>
                  <td>{i.applied ? "applied" : i.synced ? "behind" : "starting"}</td>
                  <td className={i.last_seen_ms_ago > SILENT_MS ? "error" : undefined}>
                    {i.last_seen_ms_ago > SILENT_MS ? `silent for ${(i.last_seen_ms_ago / 1000).toFixed(1)} s` : "just now"}
                  </td>
                </tr>
              ))}
              {data.items.length === 0 && <tr><td colSpan={8}>No instance is running.</td></tr>}
            </tbody>
          </TableWrap>
        </>
      )}
    </section>
  );
}
