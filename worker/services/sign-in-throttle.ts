import { and, eq, lte, sql } from "drizzle-orm";
import type { Database } from "../db";
import type { ValidatedEnv } from "../env";
import { adminSignInFailures } from "../db/schema";
import { ipBucket } from "../limits/engine";

/**
 * Throttles failed admin sign-ins per client address (IPv4, or IPv6 per /64 — the limiter's own
 * bucketing): the dashboard's sign-in form and wrong bearer tokens sent to the admin API share
 * one count, since both guess the same token. At most `maxFailures` per fixed window of
 * `windowMs`; beyond that every attempt from the address answers 429, the right token's too,
 * so guessing stops paying.
 *
 * Why a D1 table and not the limiter's Durable Object / Upstash backend:
 * - Only failures may count (an operator signing in often from a shared office address must not
 *   lock themselves out), yet a burst of parallel guesses must not all pass a "fewer than N so
 *   far?" check before any of them is counted. The dashboard reserves-then-refunds: every
 *   attempt takes a slot atomically before the token is checked, and a successful one gives it
 *   back. The limiter leases cannot hand a token back for fixed or sliding windows (`give` is
 *   for the token bucket and quotas, and only for expired leases); one SQLite upsert can.
 * - Sign-ins are rare and off the proxy's hot path: a D1 write per failure costs nothing that
 *   matters, the sessions live in D1 already, and it works the same whichever limiter backend
 *   (or none) a deployment runs.
 * - An operator locked out by someone else's guessing on a shared address can see and clear the
 *   row (`wrangler d1 execute DB --command "DELETE FROM admin_sign_in_failures"`).
 * Guarantees, per address per window: the dashboard answers "wrong token" at most `maxFailures`
 * times and checks no token after that, whatever the concurrency (D1 serializes writes; the
 * upsert reads and bumps the count in one statement). The admin API counts a wrong token after
 * checking it, so it too answers 401 at most `maxFailures` times (later ones get the same 429 as
 * the right token), but a right token is refused only once the failures are counted: see
 * `signInThrottledFor` for what that allows under a burst.
 */
export interface SignInThrottleOptions {
  maxFailures: number;
  windowMs: number;
}

/** The throttle's settings, from `ADMIN_SIGNIN_MAX_FAILURES` and `ADMIN_SIGNIN_WINDOW_SECONDS`. */
export const signInThrottleOptions = (env: ValidatedEnv): SignInThrottleOptions => ({
  maxFailures: env.ADMIN_SIGNIN_MAX_FAILURES,
  windowMs: env.ADMIN_SIGNIN_WINDOW_SECONDS * 1000,
});

export type SignInReservation =
  | { allowed: true; client: string; windowStart: number }
  | { allowed: false; client: string; retryAfterSeconds: number };

/** Takes one attempt slot for `clientIp` (call before checking the token). */
export async function reserveSignInAttempt(db: Database, clientIp: string | undefined, opts: SignInThrottleOptions, now = Date.now()): Promise<SignInReservation> {
  const client = ipBucket(clientIp);
  const t = adminSignInFailures;
  const expired = sql`${t.windowStart} <= ${now - opts.windowMs}`;
  // SQLite evaluates every SET expression against the row as it was, so both CASEs agree.
  // The count stops at maxFailures + 1: refused attempts are not checked, so there is nothing to add.
  const [row] = await db
    .insert(t)
    .values({ client, windowStart: new Date(now), failures: 1 })
    .onConflictDoUpdate({
      target: t.client,
      set: {
        failures: sql`CASE WHEN ${expired} THEN 1 ELSE min(${t.failures} + 1, ${opts.maxFailures + 1}) END`,
        windowStart: sql`CASE WHEN ${expired} THEN ${now} ELSE ${t.windowStart} END`,
      },
    })
    .returning({ failures: t.failures, windowStart: t.windowStart });
  const windowStart = row!.windowStart.getTime();
  if (row!.failures <= opts.maxFailures) return { allowed: true, client, windowStart };
  return { allowed: false, client, retryAfterSeconds: Math.max(1, Math.ceil((windowStart + opts.windowMs - now) / 1000)) };
}

/**
 * Seconds until `clientIp`'s window ends if it has used up its failures, else undefined. A read:
 * nothing is counted. The admin API asks this for a request whose token is right (a wrong one is
 * counted with `reserveSignInAttempt` after the check instead), so good callers pay one D1 read
 * and no write. The price is the bound under concurrency: a right guess that reads before
 * in-flight wrong ones are counted is let through, so a burst of parallel guesses can have more
 * than the limit checked — as many as are in flight when the limit is reached. Sequential guesses
 * get exactly the limit. (Reserving first, as the dashboard does, would be exact, but concurrent
 * good calls would then hold slots and refuse each other: fine for a sign-in form, not for a
 * provisioning script.)
 */
export async function signInThrottledFor(db: Database, clientIp: string | undefined, opts: SignInThrottleOptions, now = Date.now()): Promise<number | undefined> {
  const t = adminSignInFailures;
  const [row] = await db.select({ failures: t.failures, windowStart: t.windowStart }).from(t).where(eq(t.client, ipBucket(clientIp)));
  const end = row ? row.windowStart.getTime() + opts.windowMs : 0;
  return row && end > now && row.failures >= opts.maxFailures ? Math.max(1, Math.ceil((end - now) / 1000)) : undefined;
}

/** Gives back the slot of an attempt that succeeded (only within the window it was taken in). */
export async function releaseSignInAttempt(db: Database, r: Extract<SignInReservation, { allowed: true }>): Promise<void> {
  const t = adminSignInFailures;
  await db
    .update(t)
    .set({ failures: sql`max(${t.failures} - 1, 0)` })
    .where(and(eq(t.client, r.client), eq(t.windowStart, new Date(r.windowStart))));
}

/** Deletes rows whose window has passed (the scheduled handler runs it); returns how many. */
export async function pruneSignInFailures(db: Database, opts: SignInThrottleOptions, now = Date.now()): Promise<number> {
  const res = await db.delete(adminSignInFailures).where(lte(adminSignInFailures.windowStart, new Date(now - opts.windowMs)));
  return res.meta.changes ?? 0;
}
