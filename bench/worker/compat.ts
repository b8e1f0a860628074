// What the benchmark worker takes from the gateway that an older tree (built for --before) may
// lack, with the older tree's equivalent. Namespace imports: a missing export is undefined there.
import * as forward from "../../worker/gateway/forward";

/** The gateway's origin timeout signal; older trees used AbortSignal.timeout. */
export const timeoutSignal: (ms: number) => AbortSignal = (forward as { timeoutSignal?: (ms: number) => AbortSignal }).timeoutSignal ?? ((ms) => AbortSignal.timeout(ms));
