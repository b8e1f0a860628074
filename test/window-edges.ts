/**
 * Limit tests and window edges: what keeps tests that count against a real limiter from flaking.
 *
 * A window edge in the middle of a counting test breaks it in two ways, both by design of the
 * limiter: a fixed window starts a new count (more requests get through than the test expects),
 * and a lease granted in the last milliseconds of a window expires before the isolate can spend
 * it (a token is never carried into a window that did not count it), so the re-lease in the new
 * window still sees that token counted in the previous one and a sliding window refuses a request
 * the test expects to pass. Quotas do the same at the end of their calendar period.
 *
 * So: every window a counting test uses is 1 h (test/fixtures/gateway.test.config.ts), and every
 * quota period (UTC day, ISO week, month) also starts on an hour edge, so one rule covers them
 * all — a counting test does not start when the next hour edge is closer than its timeout
 * (`beforeEach(() => clearOfHourEdge(T), …)`): a test that does not time out cannot straddle an
 * edge. Tests about expiry use short windows and start at the beginning of a fresh one
 * (`startOfFreshWindow`).
 *
 * Every limiter backend in the tests (Durable Objects, the Upstash bridge's Redis) runs on this
 * machine's clock, so the test's clock tells where their windows begin and end.
 */

export const HOUR_MS = 3_600_000;
/** Margin after an edge, so a backend reading the clock a moment later is surely in the new window too. */
const SLACK_MS = 50;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** ms until the next edge of epoch-aligned windows of `windowMs` (how the limiter aligns them). */
export const msToEdge = (windowMs: number, now = Date.now()): number => windowMs - (now % windowMs);

/**
 * Resolves at once when the next edge of `windowMs` windows is at least `needMs` away; otherwise
 * waits until just after that edge. Give the hook a timeout above `needMs`.
 *
 * @example beforeEach(() => clearOfHourEdge(20_000), 30_000); // tests with the default 20 s timeout
 */
export async function clearOfEdge(needMs: number, windowMs: number): Promise<void> {
  if (needMs >= windowMs) throw new Error(`a test of ${needMs} ms cannot fit in a window of ${windowMs} ms`);
  for (;;) {
    const left = msToEdge(windowMs);
    if (left >= needMs) return;
    await sleep(left + SLACK_MS);
  }
}

/** `clearOfEdge` for hour windows, which also covers quota periods (each starts on an hour edge). */
export const clearOfHourEdge = (needMs: number): Promise<void> => clearOfEdge(needMs, HOUR_MS);

/** Waits until just after the next edge of `windowMs` windows; resolves to when that window ends. */
export async function startOfFreshWindow(windowMs: number): Promise<number> {
  const end = Date.now() + msToEdge(windowMs);
  // A timer may fire a little early by Date.now(): wait until the clock itself says so.
  while (Date.now() < end + SLACK_MS) await sleep(end + SLACK_MS - Date.now());
  return end + windowMs;
}
