import { z } from "@hono/zod-openapi";
import { definePlugin } from "../../worker/gateway/plugin";
import { commonLimitOptions, createLimitHandler, parseDuration } from "../../worker/limits/engine";

const LIMIT_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export const rateLimitOptions = z
  .strictObject({
    name: z.string().regex(LIMIT_NAME).default("rate").describe("Names the limit: overrides in D1 and counters refer to it"),
    algorithm: z
      .enum(["sliding-window", "fixed-window", "token-bucket"])
      .default("sliding-window")
      .describe("sliding-window (smooth, approximate), fixed-window (exact per window, allows 2× bursts at edges), token-bucket (steady rate with bursts up to `limit`)"),
    window: z
      .union([z.string(), z.number()])
      .default("1m")
      .describe("Window length (1s–1h), e.g. \"10s\", \"1m\", \"1h\" or a number of seconds; for token-bucket, the time to refill a full bucket"),
    failMode: z.enum(["open", "closed"]).default("open").describe("When the backend is down or slow: `open` admits (protective limits), `closed` answers 503 LIMITER_UNAVAILABLE"),
    ...commonLimitOptions,
  })
  .superRefine((o, ctx) => {
    const ms = parseDuration(o.window);
    if (ms === null || ms < 1000 || ms > 3_600_000) ctx.addIssue({ code: "custom", path: ["window"], message: "must be a duration from 1s to 1h, e.g. \"30s\" or \"1m\"" });
  });
export type RateLimitOptions = z.input<typeof rateLimitOptions>;

/**
 * Limits how fast a subject (by default the proxy user) may call: `limit` requests per `window`.
 * A refused request gets 429 RATE_LIMITED with Retry-After and never reaches the origin; every
 * response carries RateLimit-Limit / -Remaining / -Reset / -Policy. The limit can be overridden
 * per role and per user through the admin API (`PUT /admin/v1/users/{id}/limits`).
 *
 * Backends: the LIMITER Durable Object (default), or Upstash when UPSTASH_REDIS_REST_URL/_TOKEN
 * are set. Warm subjects spend leased tokens in the isolate (no round trip), never over-admitting.
 *
 * @example plugins: [keyAuth(), authorize(), rateLimit({ limit: 100, window: "1m" })]
 * @example rateLimit({ name: "burst", algorithm: "token-bucket", limit: 20, window: "10s", by: ["user", "route"] })
 */
export const rateLimit = definePlugin({
  name: "rate-limit",
  traits: { leavesIdentityHeaders: true },
  config: rateLimitOptions,
  create: (o) =>
    createLimitHandler({
      kind: "rate",
      name: o.name,
      algorithm: o.algorithm,
      limit: o.limit,
      windowMs: parseDuration(o.window)!,
      period: undefined,
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
