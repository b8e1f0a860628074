import { createRoute, z } from "@hono/zod-openapi";
import { AUDIT_LOG_NAMES } from "../audit/chain-names";
import { exportNdjson, listAdminEvents, listRequestEvents, queryUsage } from "../audit/query";
import { DIMENSIONS, GRANULARITIES, type Granularity } from "../audit/rollups";
import { verifyAudit } from "../audit/verify";
import { createAdminRouter, json, problems } from "./openapi";
import { pageOf } from "./schemas";

export function auditRouter() {
  const tags = ["audit"];
  const instant = z.iso
    .datetime({ offset: true })
    .transform((s) => new Date(s))
    .openapi({ type: "string", format: "date-time", example: "2026-11-30T00:00:00Z" });
  const pageQuery = {
    limit: z.coerce.number().int().min(1).max(500).default(100).describe("Page size (1–500)"),
    cursor: z.string().max(300).optional().describe("`nextCursor` from the previous page"),
  };
  const range = {
    from: instant.optional().describe("Only events at or after this instant"),
    to: instant.optional().describe("Only events before this instant"),
  };
  const idLike = z.string().max(100);

  const requestFilters = {
    userId: idLike.optional().describe("Proxy user id"),
    keyId: idLike.optional().describe("Key id"),
    route: idLike.optional().describe("Route name"),
    group: idLike.optional().describe("Proxy user group"),
    decision: z.enum(["allowed", "refused", "error"]).optional().describe("What the gateway decided"),
    decidedBy: idLike.optional().describe("Refusing plugin (`key-auth`, `authorize`, …) or `gateway` / `upstream`"),
    code: idLike.optional().describe("Problem code, e.g. `KEY_INVALID`"),
    statusClass: z.enum(["1xx", "2xx", "3xx", "4xx", "5xx"]).optional().describe("Status class of the response"),
    limitOutcome: z.enum(["refused", "dry-run-refused", "fail-open", "fail-closed"]).optional().describe("A limit had this outcome (`fail-open`: let through while its backend was down)"),
    ...range,
  };
  const adminFilters = {
    actor: idLike.optional().describe("`admin-token`, `system:auto-revoke`, …"),
    action: idLike.optional().describe("e.g. `user.update`, `key.revoke`"),
    targetType: idLike.optional().describe("`user`, `role`, `key`, `limit`, `secret`, …"),
    targetId: idLike.optional().describe("Id of the changed object"),
    ...range,
  };

  const requestEventSchema = z
    .object({
      id: z.string().describe("The request id (X-Request-Id)"),
      timestamp: z.string(),
      userId: z.string().nullable(),
      keyId: z.string().nullable().describe("Key id — never the key"),
      group: z.string().nullable(),
      route: z.string().nullable(),
      method: z.string(),
      path: z.string().describe("Path and query, query values redacted per the audit plugin's rules"),
      clientIp: z.string().nullable(),
      country: z.string().nullable(),
      colo: z.string().nullable(),
      decision: z.enum(["allowed", "refused", "error"]),
      decidedBy: z.string().nullable(),
      code: z.string().nullable(),
      reason: z.string().nullable(),
      status: z.number().int(),
      originStatus: z.number().int().nullable(),
      bytesIn: z.number().int().nullable(),
      bytesOut: z.number().int().nullable(),
      latencyMs: z.number(),
      originLatencyMs: z.number().nullable(),
      limitState: z.unknown(),
      chain: z.string().describe("Hash chain (UTC day written)"),
      seq: z.number().int(),
      hash: z.string().nullable(),
    })
    .openapi("RequestEvent");

  const adminEventSchema = z
    .object({
      id: z.string(),
      timestamp: z.string(),
      actor: z.string(),
      action: z.string(),
      targetType: z.string(),
      targetId: z.string(),
      requestId: z.string(),
      before: z.record(z.string(), z.unknown()).nullable().describe("Redacted snapshot before the change"),
      after: z.record(z.string(), z.unknown()).nullable().describe("Redacted snapshot after the change"),
      seq: z.number().int().nullable(),
      hash: z.string().nullable(),
    })
    .openapi("AdminEvent");

  const chainReportSchema = z.object({
    chain: z.string().nullable(),
    status: z.enum(["ok", "broken", "retired", "empty"]),
    rows: z.number().int(),
    firstSeq: z.number().int().nullable(),
    lastSeq: z.number().int().nullable(),
    headHash: z.string().nullable(),
    unsealed: z.number().int(),
    retiredThroughSeq: z.number().int().nullable(),
    unchained: z
      .number()
      .int()
      .describe("Admin rows written before migration 0002 (no chain position): not verified. 0 for request chains"),
    unchainedRange: z.object({ from: z.string(), to: z.string() }).nullable().describe("Oldest and newest timestamp of those rows"),
  });
  const verifySchema = z
    .object({
      ok: z.boolean(),
      log: z.enum(AUDIT_LOG_NAMES),
      checkedRows: z.number().int(),
      unsealedRows: z.number().int(),
      unchainedRows: z.number().int().describe("Admin rows outside the chain (written before migration 0002): reported, not verified, not a failure"),
      truncated: z.boolean(),
      chains: z.array(chainReportSchema),
      firstBroken: z
        .object({
          log: z.enum(AUDIT_LOG_NAMES),
          chain: z.string().nullable(),
          seq: z.number().int(),
          id: z.string(),
          reason: z.enum(["content_hash_mismatch", "prev_hash_mismatch", "missing_rows", "sealed_after_unsealed"]),
          expected: z.string().nullable(),
          stored: z.string().nullable(),
        })
        .nullable(),
    })
    .openapi("AuditVerification");

  const usageSchema = z
    .object({
      by: z.enum(DIMENSIONS),
      granularity: z.enum(["minute", "hour", "day"]),
      from: z.string(),
      to: z.string(),
      data: z.array(
        z.object({
          value: z.string().describe("User id, group, route name; `*` for all; `-` for requests without one"),
          bucket: z.string().describe("Bucket start (UTC)"),
          requests: z.number().int(),
          status: z.object({ "1xx": z.number(), "2xx": z.number(), "3xx": z.number(), "4xx": z.number(), "5xx": z.number() }),
          decisions: z.record(z.string(), z.number()).describe("`allowed`, `allowed:fail-open` (let through while a limit's backend was down), or `<decidedBy>:<code>` → count"),
          latencyMs: z.object({ avg: z.number().nullable(), p50: z.number().nullable(), p90: z.number().nullable(), p95: z.number().nullable(), p99: z.number().nullable() }),
          bytesIn: z.number(),
          bytesOut: z.number(),
        }),
      ),
    })
    .openapi("Usage");

  const DEFAULT_SPAN: Record<Granularity, number> = { minute: 3_600_000, hour: 86_400_000, day: 30 * 86_400_000 };

  return createAdminRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/audit/requests",
        tags,
        summary: "List request audit events",
        description: "Newest first. Every proxied or refused request has one event (written asynchronously, usually within seconds).",
        request: { query: z.object({ ...requestFilters, ...pageQuery }) },
        responses: { 200: json(pageOf(requestEventSchema, "RequestEventPage"), "A page of request events"), ...problems(400) },
      }),
      async (c) => c.json(await listRequestEvents(c.var.services.db, c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/audit/admin",
        tags,
        summary: "List admin audit events",
        description: "Newest first. One event per admin mutation, written in the same transaction as the change.",
        request: { query: z.object({ ...adminFilters, ...pageQuery }) },
        responses: { 200: json(pageOf(adminEventSchema, "AdminEventPage"), "A page of admin events"), ...problems(400) },
      }),
      async (c) => c.json(await listAdminEvents(c.var.services.db, c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/audit/export",
        tags,
        summary: "Export audit events as NDJSON",
        description: "Streams one JSON event per line, oldest first, for a time range and the same filters as the list endpoints.",
        request: { query: z.object({ log: z.enum(AUDIT_LOG_NAMES).default("requests").describe("Which trail"), ...requestFilters, ...adminFilters }) },
        responses: { 200: { description: "NDJSON stream", content: { "application/x-ndjson": { schema: z.string() } } }, ...problems(400) },
      }),
      (c) => {
        const { log, ...filters } = c.req.valid("query");
        return new Response(exportNdjson(c.var.services.db, log, filters), {
          status: 200,
          headers: { "content-type": "application/x-ndjson; charset=utf-8", "content-disposition": `attachment; filename="portcullis-${log}-audit.ndjson"` },
        }) as never;
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/audit/verify",
        tags,
        summary: "Verify the audit hash chains",
        description:
          "Recomputes the hash chain over a range and reports the first broken link. Requests: day chains between `from` and `to` (default: the last 7 days), or one `chain` from `fromSeq`. Admin: the whole chain, or `fromSeq`..`toSeq`.",
        request: {
          query: z.object({
            log: z.enum(AUDIT_LOG_NAMES).default("requests").describe("Which trail"),
            ...range,
            chain: z.string().regex(/^\d{4}-\d{2}-\d{2}$/).optional().describe("One request chain (UTC day, YYYY-MM-DD)"),
            fromSeq: z.coerce.number().int().min(1).optional().describe("Start at this seq (its predecessor's stored hash is the anchor)"),
            toSeq: z.coerce.number().int().min(1).optional().describe("Stop after this seq"),
            maxRows: z.coerce.number().int().min(1).max(1_000_000).default(200_000).describe("Row budget for this call"),
          }),
        },
        responses: { 200: json(verifySchema, "The verification report (`ok: false` names the first broken link)"), ...problems(400) },
      }),
      async (c) => c.json(await verifyAudit(c.env.DB, c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/usage",
        tags: ["usage"],
        summary: "Usage per proxy user, group or route",
        description:
          "Counts by status class and decision, and latency percentiles, per time bucket — read from rollups maintained as events arrive. Percentiles are the upper bound of the fixed histogram bucket holding the quantile.",
        request: {
          query: z.object({
            by: z.enum(DIMENSIONS).default("user").describe("Dimension"),
            value: idLike.optional().describe("One user id / group / route name (default: every value)"),
            granularity: z.enum(Object.keys(GRANULARITIES) as [Granularity, ...Granularity[]]).default("hour").describe("Bucket size"),
            ...range,
          }),
        },
        responses: { 200: json(usageSchema, "Usage buckets"), ...problems(400) },
      }),
      async (c) => {
        const q = c.req.valid("query");
        const to = q.to ?? new Date();
        const from = q.from ?? new Date(to.getTime() - DEFAULT_SPAN[q.granularity]);
        return c.json(await queryUsage(c.var.services.db, { by: q.by, value: q.value, granularity: q.granularity, from, to }), 200);
      },
    );
}
