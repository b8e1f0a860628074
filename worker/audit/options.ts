import { z } from "@hono/zod-openapi";

/** Query parameters whose values are redacted by default: the usual places credentials hide. */
export const DEFAULT_REDACTED_QUERY_PARAMS = [
  "key",
  "api_key",
  "apikey",
  "api-key",
  "token",
  "access_token",
  "refresh_token",
  "id_token",
  "auth",
  "authorization",
  "password",
  "passwd",
  "secret",
  "client_secret",
  "signature",
  "sig",
  "x-amz-signature",
  "x-amz-credential",
  "x-amz-security-token",
  "code",
  "session",
  "sessionid",
];

const paramName = z.string().min(1).max(200);

export const auditOptions = z.strictObject({
  redactQueryParams: z
    .array(paramName)
    .default(DEFAULT_REDACTED_QUERY_PARAMS)
    .describe("Query parameters whose values are stored as `REDACTED` (names compared case-insensitively; a trailing `*` matches a prefix, e.g. `x-sig-*`)"),
  keepQueryParams: z
    .array(paramName)
    .optional()
    .describe("Allowlist mode: when set, every parameter NOT listed here is redacted (and `redactQueryParams` still applies to listed ones)"),
  recordUnmatched: z
    .boolean()
    .default(true)
    .describe("Also record requests refused before any route matched (404 unmatched path, 400 non-canonical path)"),
  sink: z
    .enum(["auto", "queue", "d1"])
    .default("auto")
    .describe("`auto`: the AUDIT_QUEUE binding when bound, else D1 directly; `queue`/`d1` force one (a forced queue falls back to D1 when unbound or failing)"),
  flushIntervalMs: z.number().int().min(10).max(10_000).default(1000).describe("A batch is flushed at most this long after its first event"),
  maxBatch: z.number().int().min(1).max(100).default(100).describe("…or as soon as it holds this many events (Queue sendBatch takes at most 100)"),
  streamIdleMs: z
    .number()
    .int()
    .min(100)
    .max(20_000)
    .default(10_000)
    .describe(
      "A response streamed without Content-Length is recorded when it ends; if no byte moves for this long it is recorded then (`reason: stream_idle`, bytes counted so far), because a client that goes away mid-stream is not always reported to the Worker",
    ),
})
  // After a client is gone the runtime keeps waitUntil work for ~30 s: the idle wait and the
  // flush that follows must fit in it, with room for the sink's retries.
  .refine((o) => o.streamIdleMs + o.flushIntervalMs <= 25_000, { path: ["streamIdleMs"], message: "streamIdleMs + flushIntervalMs must be at most 25000" });
export type AuditOptions = z.output<typeof auditOptions>;
export type AuditOptionsInput = z.input<typeof auditOptions>;

/**
 * Bag keys other plugins use to enrich the audit event (c.var.bag). Values must be small,
 * JSON-serializable and secret-free.
 */
export const AUDIT_BAG = {
  /** `{ userId?, keyId? }` of a caller that was identified but refused (e.g. a revoked key). */
  subject: "audit:subject",
  /** A short machine reason beyond the problem code, e.g. `key_revoked`. */
  reason: "audit:reason",
  /** Rate-limit / quota state, e.g. `{ limit: 100, remaining: 7, resetMs: 1200 }`. */
  limitState: "audit:limit-state",
  /** Set by the audit plugin while it wraps the chain: other plugins may skip their own usage writes. */
  active: "audit:active",
} as const;
