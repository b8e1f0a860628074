import type { LeaseReply, LeaseRequest, LimitSpec, UsageReport } from "./types";

/**
 * The counting rules, written once in TypeScript for the Durable Object backend; the Upstash
 * backend runs the same rules in Lua (upstash.ts) — keep the two in step.
 *
 * Every rule has the same shape: compute what is `avail`able now, grant
 * `min(want, max(1, floor(avail / FAIR_SHARE)))` of it (never more than avail), count the
 * grant at once. Counting at grant time is what makes leasing exact: a token an isolate holds is
 * already spent in the backend, so the sum of all admissions never exceeds the limit. The fair
 * share shrinks grants as the budget runs out (down to 1), so near the limit the tokens are
 * spread thinly across isolates instead of stranded in one.
 */
export const FAIR_SHARE = 4;

/** How long a token-bucket lease may be spent; unspent tokens go back with the next lease. */
export const BUCKET_LEASE_TTL_MS = 2_000;
/** How long a quota lease may be spent; short so unspent units are handed back soon. */
export const PERIOD_LEASE_TTL_MS = 10_000;

export const grantSize = (want: number, avail: number): number =>
  avail <= 0 || want <= 0 ? 0 : Math.min(want, avail, Math.max(1, Math.floor(avail / FAIR_SHARE)));

/** Counters of a fixed or sliding window: the current window's start, its count and the previous one's. */
export interface WindowState {
  ws: number;
  cur: number;
  prev: number;
}
/**
 * `gen` names one life of a bucket or a quota counter: set when it is created and changed by every
 * admin reset. Leases report it as their `window`, and unspent tokens handed back are credited only
 * to the same life — tokens leased before a reset were counted by the old counter, so crediting
 * them to the new one would admit more than the limit. (States stored before `gen` existed read
 * as generation 0 for buckets and as the period start for quotas, which is what leases they
 * granted carry.)
 */
export interface BucketState {
  tokens: number;
  at: number;
  gen?: number;
}
export interface PeriodState {
  start: number;
  count: number;
  gen?: number;
}

/** A new generation: later than any before it (even if the clock went back), normally the reset time. */
const nextGen = (previous: number, now: number): number => Math.max(now, previous + 1);

/** Rolls window counters forward to the window containing `now`. */
export function rollWindow(s: WindowState | undefined, windowMs: number, now: number): WindowState {
  const ws = Math.floor(now / windowMs) * windowMs;
  if (!s || s.ws < ws - windowMs) return { ws, cur: 0, prev: 0 };
  if (s.ws === ws - windowMs) return { ws, cur: 0, prev: s.cur };
  if (s.ws === ws) return { ...s };
  // A stored window from the future (clock went back): keep counting in it, never forget usage.
  return { ...s };
}

/** Sliding-window estimate of usage now: the previous window weighted by how much of it still overlaps. */
function slidingUsed(s: WindowState, windowMs: number, now: number): number {
  const weight = Math.max(0, (s.ws + windowMs - now) / windowMs);
  return s.prev * weight + s.cur;
}

/** ms until the sliding estimate drops to ≤ limit − 1 (one request would fit). */
function slidingRetry(s: WindowState, limit: number, windowMs: number, now: number): number {
  const end = s.ws + windowMs;
  // A limit of 0 (everything blocked, e.g. a user override) never frees a token: say "next window".
  if (limit < 1) return Math.max(1, Math.ceil(end - now));
  if (s.cur <= limit - 1) {
    if (s.prev <= 0) return 0;
    const t = end - (windowMs * (limit - 1 - s.cur)) / s.prev;
    return Math.max(1, Math.ceil(t - now));
  }
  // Not before the next window, where this window's count is the decaying previous one.
  const t = end + windowMs * (1 - (limit - 1) / s.cur);
  return Math.max(1, Math.ceil(t - now));
}

export function leaseWindow(s0: WindowState | undefined, req: LeaseRequest, now: number): { state: WindowState; reply: LeaseReply } {
  const { spec } = req;
  const s = rollWindow(s0, spec.windowMs, now);
  const sliding = spec.algorithm === "sliding-window";
  const used = sliding ? slidingUsed(s, spec.windowMs, now) : s.cur;
  const avail = Math.floor(spec.limit - used);
  const granted = grantSize(req.want, avail);
  s.cur += granted;
  const remaining = Math.max(0, avail - granted);
  const untilEnd = s.ws + spec.windowMs - now;
  const retryMs = remaining > 0 ? 0 : sliding ? slidingRetry(s, spec.limit, spec.windowMs, now) : untilEnd;
  // A lease lives only inside the window it was counted in: spent later, it would escape the count.
  return { state: s, reply: { granted, remaining, retryMs, resetMs: sliding && remaining === 0 ? retryMs : untilEnd, ttlMs: untilEnd, window: s.ws } };
}

export function usageWindow(s0: WindowState | undefined, spec: LimitSpec, now: number): UsageReport {
  const s = rollWindow(s0, spec.windowMs, now);
  const used = spec.algorithm === "sliding-window" ? slidingUsed(s, spec.windowMs, now) : s.cur;
  return { used: Math.ceil(used), remaining: Math.max(0, Math.floor(spec.limit - used)), resetMs: s.ws + spec.windowMs - now, window: s.ws };
}

/** Continuous refill: `limit` tokens per `windowMs`, capped at `limit`. A new bucket starts full. */
function refill(s: BucketState | undefined, spec: LimitSpec, now: number): BucketState {
  if (!s) return { tokens: spec.limit, at: now, gen: now };
  const elapsed = Math.max(0, now - s.at);
  return { tokens: Math.min(spec.limit, s.tokens + (elapsed * spec.limit) / spec.windowMs), at: Math.max(now, s.at), gen: s.gen ?? 0 };
}

/** An admin reset: a full bucket of a new generation (tokens leased from the old one are not credited back). */
export function resetBucket(s0: BucketState | undefined, spec: LimitSpec, now: number): BucketState {
  return { tokens: spec.limit, at: now, gen: nextGen(refill(s0, spec, now).gen!, now) };
}

export function leaseBucket(s0: BucketState | undefined, req: LeaseRequest, now: number): { state: BucketState; reply: LeaseReply } {
  const { spec } = req;
  const s = refill(s0, spec, now);
  if (req.give > 0 && req.giveWindow === s.gen) s.tokens = Math.min(spec.limit, s.tokens + req.give);
  const granted = grantSize(req.want, Math.floor(s.tokens));
  s.tokens -= granted;
  // A bucket of 0 never refills: report the window as the wait rather than infinity.
  const perTokenMs = spec.limit >= 1 ? spec.windowMs / spec.limit : spec.windowMs;
  const remaining = Math.floor(s.tokens);
  return {
    state: s,
    reply: {
      granted,
      remaining,
      retryMs: remaining >= 1 ? 0 : Math.max(1, Math.ceil((1 - s.tokens) * perTokenMs)),
      resetMs: Math.ceil(Math.max(0, spec.limit - s.tokens) * perTokenMs),
      ttlMs: Math.min(spec.windowMs, BUCKET_LEASE_TTL_MS),
      window: s.gen!,
    },
  };
}

export function usageBucket(s0: BucketState | undefined, spec: LimitSpec, now: number): UsageReport {
  const s = refill(s0, spec, now);
  const perTokenMs = spec.limit >= 1 ? spec.windowMs / spec.limit : spec.windowMs;
  return { used: Math.ceil(spec.limit - s.tokens), remaining: Math.floor(s.tokens), resetMs: Math.ceil(Math.max(0, spec.limit - s.tokens) * perTokenMs), window: s.gen! };
}

function rollPeriod(s: PeriodState | undefined, spec: LimitSpec): PeriodState {
  const start = spec.periodStart!;
  // A newer period always wins; an older request (an isolate behind the clock) counts in the current one.
  if (!s || s.start < start) return { start, count: 0 };
  return { ...s };
}

/** The identity leases of this counter carry: its generation, or (never reset) its period start. */
const periodGen = (s: PeriodState): number => s.gen ?? s.start;

/** An admin reset: the period's count back to 0, as a new generation (see BucketState). */
export function resetPeriod(s0: PeriodState | undefined, spec: LimitSpec, now: number): PeriodState {
  const s = rollPeriod(s0, spec);
  return { start: s.start, count: 0, gen: nextGen(periodGen(s), now) };
}

export function leasePeriod(s0: PeriodState | undefined, req: LeaseRequest, now: number): { state: PeriodState; reply: LeaseReply } {
  const { spec } = req;
  const s = rollPeriod(s0, spec);
  if (req.give > 0 && req.giveWindow === periodGen(s)) s.count = Math.max(0, s.count - req.give);
  const avail = spec.limit - s.count;
  const granted = grantSize(req.want, avail);
  s.count += granted;
  const remaining = Math.max(0, avail - granted);
  const untilEnd = Math.max(1, spec.periodEnd! - now);
  return {
    state: s,
    reply: { granted, remaining, retryMs: remaining > 0 ? 0 : untilEnd, resetMs: untilEnd, ttlMs: Math.min(untilEnd, PERIOD_LEASE_TTL_MS), window: periodGen(s) },
  };
}

export function usagePeriod(s0: PeriodState | undefined, spec: LimitSpec, now: number): UsageReport {
  const s = rollPeriod(s0, spec);
  return { used: s.count, remaining: Math.max(0, spec.limit - s.count), resetMs: Math.max(1, spec.periodEnd! - now), window: periodGen(s) };
}

/** The storage slot a spec's state lives in (one Durable Object may serve several specs of a key). */
export const stateSlot = (spec: LimitSpec): string =>
  spec.algorithm === "token-bucket" ? `b:${spec.windowMs}` : spec.algorithm === "period" ? "p" : `w:${spec.windowMs}`;

const DAY = 86_400_000;
export type Period = "day" | "week" | "month";

/**
 * The calendar period (UTC) containing `now`: days start at 00:00 UTC, weeks on Monday 00:00 UTC
 * (ISO 8601), months on the 1st at 00:00 UTC.
 */
export function periodBounds(period: Period, now: number): { start: number; end: number } {
  const d = new Date(now);
  if (period === "day") {
    const start = Math.floor(now / DAY) * DAY;
    return { start, end: start + DAY };
  }
  if (period === "week") {
    const dayStart = Math.floor(now / DAY) * DAY;
    const sinceMonday = (d.getUTCDay() + 6) % 7;
    const start = dayStart - sinceMonday * DAY;
    return { start, end: start + 7 * DAY };
  }
  const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  return { start, end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
}
