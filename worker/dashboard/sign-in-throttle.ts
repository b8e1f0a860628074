import { and, eq, lte, sql } from "drizzle-orm";
import type { Database } from "../db";
import { adminSignInFailures } from "../db/schema";
import { ipBucket } from "../limits/engine";

/**
 * Throttles failed dashboard sign-ins per client address (IPv4, or IPv6 per /64 — the limiter's
 * own bucketing): at most `maxFailures` per fixed window of `windowMs`; beyond that the sign-in
 * answers 429 without even looking at the token, so guessing stops paying.
 *
 * Why a D1 table and not the limiter's Durable Object / Upstash backend:
 * - Only failures may count (an operator signing in often from a shared office address must not
 *   lock themselves out), yet a burst of parallel guesses must not all pass a "fewer than N so
 *   far?" check before any of them is counted. That needs reserve-then-refund: every attempt
 *   takes a slot atomically before the token is checked, and a successful one gives it back.
 *   The limiter leases cannot hand a token back for fixed or sliding windows (`give` is for the
 *   token bucket and quotas, and only for expired leases); one SQLite upsert can do exactly this.
 * - Sign-ins are rare and off the proxy's hot path: a D1 write per attempt costs nothing that
 *   matters, the sessions live in D1 already, and it works the same whichever limiter backend
 *   (or none) a deployment runs.
 * - An operator locked out by someone else's guessing on a shared address can see and clear the
 *   row (`wrangler d1 execute DB --command "DELETE FROM admin_sign_in_failures"`), and still has
 *   the admin API and CLI, which take the token as a bearer header.
 * Guarantee: at most `maxFailures` token checks fail per address per window, whatever the
 * concurrency (D1 serializes writes; the upsert reads and bumps the count in one statement).
 */
export interface SignInThrottleOptions {
  maxFailures: number;
  windowMs: number;
}

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
