import { z } from "@hono/zod-openapi";
import { definePlugin } from "../../worker/gateway/plugin";
import { commonLimitOptions, createLimitHandler } from "../../worker/limits/engine";

const PERIOD_MS = { day: 86_400_000, week: 7 * 86_400_000, month: 30 * 86_400_000 } as const;

export const quotaOptions = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/).default("quota").describe("Names the quota: overrides in D1, counters and admin resets refer to it"),
  period: z
    .enum(["day", "week", "month"])
    .default("month")
    .describe("Calendar period in UTC: day from 00:00, week from Monday 00:00 (ISO), month from the 1st 00:00"),
  failMode: z.enum(["open", "closed"]).default("closed").describe("When the backend is down or slow: `closed` (default) answers 503 LIMITER_UNAVAILABLE, `open` admits uncounted"),
  ...commonLimitOptions,
});
export type QuotaOptions = z.input<typeof quotaOptions>;

/**
 * A quota: at most `limit` requests per calendar period (UTC), by default per proxy user and so
 * shared by all of its keys (rotating a key does not reset it). Exhausted → 429 QUOTA_EXCEEDED
 * with Retry-After until the period ends. Only requests that reach the origin are charged: one a
 * later plugin refuses (authorize's 403, a rate limit's 429) gets its token back (README, "What is
 * charged"). Counts are kept by the backend (durable across restarts); an admin can read them
 * (`GET /admin/v1/users/{id}/limits/status`) and reset them (`POST /admin/v1/users/{id}/limits/reset`).
 *
 * @example plugins: [keyAuth(), authorize(), quota({ limit: 100_000, period: "month" })]
 * @example quota({ name: "partner-daily", limit: 5_000, period: "day", by: ["group"] })
 */
export const quota = definePlugin({
  name: "quota",
  traits: { leavesIdentityHeaders: true },
  config: quotaOptions,
  create: (o) =>
    createLimitHandler({
      kind: "quota",
      name: o.name,
      algorithm: "period",
      limit: o.limit,
      windowMs: PERIOD_MS[o.period],
      period: o.period,
      by: o.by,
      failMode: o.failMode,
      dryRun: o.dryRun,
      backend: o.backend,
      durableObjectBinding: o.durableObjectBinding,
      upstash: o.upstash,
      timeoutMs: o.timeoutMs,
      leaseMax: o.leaseMax,
      headers: o.headers,
    }),
});
