import { useEffect, useState } from "react";
import { describeNotApplied } from "@junction/sdk";
import { useClient } from "../session";

const WAIT_S = 10;

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
        : `Not yet live on every instance after ${WAIT_S} s: ${describeNotApplied(answer)}.`))
      .catch(() => live && setText("Could not ask the instances whether they have it."));
    return () => {
      live = false;
    };
  }, [client, change]);
  return <p className="applied" role="status">{text}</p>;
}
