import type { Context } from "hono";

/**
 * Schedules work to finish after the response. Outside a Worker invocation (e.g. `app.request`
 * in a unit test) there is no execution context; the promise then just runs unawaited.
 */
export function waitUntil(c: Context, promise: Promise<unknown>): void {
  try {
    c.executionCtx.waitUntil(promise);
  } catch {
    promise.catch(() => {});
  }
}
