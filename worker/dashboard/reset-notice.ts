import type { LimitResetResult } from "../services/limits";
import { counterLabel } from "../services/limits";
import type { DashboardContext } from "./forms";

/** A reset's outcome for the page it redirects to: `reset=` / `unavailable=` per counter, added to `q`. */
export function resetQuery(results: LimitResetResult[], q = new URLSearchParams()): URLSearchParams {
  for (const r of results) q.append(r.outcome === "reset" ? "reset" : "unavailable", counterLabel(r));
  return q;
}

/** After a reset: which counters were reset (a notice) and which were not because their limiter did not answer (an alert). */
export function resetMessages(c: DashboardContext): { notice: string | undefined; error: string | undefined } {
  const reset = c.req.queries("reset") ?? [];
  const unavailable = c.req.queries("unavailable") ?? [];
  const notice = reset.length ? `Usage reset: ${reset.join(", ")}.` : unavailable.length ? undefined : "Usage reset.";
  const error = unavailable.length
    ? `${reset.length ? "Not reset" : "Nothing was reset"}: ${unavailable.join(", ")} — the limiter backend did not answer. Try again shortly.`
    : undefined;
  return { notice, error };
}
