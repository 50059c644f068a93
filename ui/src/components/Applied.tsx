import { useEffect, useState } from "react";
import type { ConfigApplied } from "@junction/sdk";
import { useClient } from "../session";

const WAIT_S = 10;

/** What keeps a change from every instance, in words. */
export function notAppliedReason(answer: ConfigApplied): string {
  if (!answer.relayed) return "the change is not yet written to Kafka (is the broker up?)";
  const parts = answer.missing.map((name) => `no ${name} instance is running`);
  for (const [name, n] of Object.entries(answer.services)) {
    if (n.instances && n.applied < n.instances) parts.push(`${n.instances - n.applied} of ${n.instances} ${name} instances behind`);
  }
  return parts.join("; ") || "not yet applied";
}

/** After a save: whether every running instance has it yet (GET /api/v1/config/applied, waiting up to
 * 10 s), so that whoever saved knows when a call will see it. `change` names the save: a new one asks again. */
export function AppliedStatus({ change }: { change: string }) {
  const client = useClient();
  const [text, setText] = useState("Applying to every instance…");
  useEffect(() => {
    let live = true;
    setText("Applying to every instance…");
    client
      .configApplied(WAIT_S)
      .then((answer) => live && setText(answer.applied ? "Live on every instance."
        : `Not yet live on every instance after ${WAIT_S} s: ${notAppliedReason(answer)}.`))
      .catch(() => live && setText("Could not ask the instances whether they have it."));
    return () => {
      live = false;
    };
  }, [client, change]);
  return <p className="applied" role="status">{text}</p>;
}
