/** The top bar's list of organisations (Layout loads it): pages that change organisations reload it, so the
 * organisation switch shows a new, renamed, disabled or enabled organisation at once. */
import { createContext, useContext } from "react";

export const OrgListContext = createContext<{ reload: () => void }>({ reload: () => {} });

export function useOrgList(): { reload: () => void } {
  return useContext(OrgListContext);
}
