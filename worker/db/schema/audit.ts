import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/**
 * One row per proxied or refused request (see worker/audit). The primary key is the gateway's
 * own request id, so a redelivered event can never be stored twice.
 *
 * Tamper evidence: rows are hash-chained per `chain` (the UTC day the row was written,
 * `YYYY-MM-DD`). `seq` is dense within a chain (assigned inside the insert's transaction);
 * `hash = sha256(prev_hash + "\n" + canonical(row))` is filled in by the sealer right after
 * the insert (worker/audit/chain.ts). Keys, key hashes and secret values are never stored.
 */
export const requestEvents = sqliteTable(
  "request_events",
  {
    id: text("id").primaryKey(),
    chain: text("chain").notNull(),
    seq: integer("seq").notNull(),
    /** Unix ms when the gateway received the request. */
    ts: integer("ts").notNull(),
    userId: text("user_id"),
    keyId: text("key_id"),
    group: text("group"),
    route: text("route"),
    method: text("method").notNull(),
    /** Path and query string, query values redacted by the audit plugin's rules. */
    path: text("path").notNull(),
    clientIp: text("client_ip"),
    country: text("country"),
    colo: text("colo"),
    /** `allowed` (reached the origin), `refused` (a plugin or the gateway said no) or `error` (the origin could not be used). */
    decision: text("decision").notNull(),
    /** The plugin (or `gateway`, `upstream`) that refused; null when allowed. */
    decidedBy: text("decided_by"),
    /** The problem `code` the client got, if any. */
    code: text("code"),
    /** Why, when a plugin said more than its code (e.g. key-auth's `key_revoked`). */
    reason: text("reason"),
    status: integer("status").notNull(),
    originStatus: integer("origin_status"),
    bytesIn: integer("bytes_in"),
    bytesOut: integer("bytes_out"),
    latencyMs: integer("latency_ms").notNull(),
    originLatencyMs: integer("origin_latency_ms"),
    /** JSON text: rate-limit/quota state as the limits plugins reported it. */
    limitState: text("limit_state"),
    prevHash: text("prev_hash"),
    hash: text("hash"),
  },
  (t) => [
    uniqueIndex("request_events_chain_seq_idx").on(t.chain, t.seq),
    index("request_events_ts_idx").on(t.ts, t.id),
    index("request_events_user_idx").on(t.userId, t.ts),
    index("request_events_key_idx").on(t.keyId, t.ts),
    index("request_events_route_idx").on(t.route, t.ts),
  ],
);
export type RequestEventRow = typeof requestEvents.$inferSelect;

/**
 * Usage counters maintained as events are written (never by scanning events at query time).
 * One row per (granularity, bucket, dimension, value, decision). Latency is a fixed histogram
 * (columns l00…l15) so percentiles can be merged across buckets and rows.
 */
export const usageRollups = sqliteTable(
  "usage_rollups",
  {
    /** `minute`, `hour` or `day`. */
    granularity: text("granularity").notNull(),
    /** Bucket start, Unix ms (UTC). */
    bucket: integer("bucket").notNull(),
    /** `user`, `group`, `route` or `all`. */
    dim: text("dim").notNull(),
    /** The user id, group name, route name; `*` for `all`; `-` when the request had none. */
    value: text("value").notNull(),
    /** `allowed`, or `<decidedBy>:<code>` for refusals and errors. */
    decision: text("decision").notNull(),
    requests: integer("requests").notNull().default(0),
    s1xx: integer("s1xx").notNull().default(0),
    s2xx: integer("s2xx").notNull().default(0),
    s3xx: integer("s3xx").notNull().default(0),
    s4xx: integer("s4xx").notNull().default(0),
    s5xx: integer("s5xx").notNull().default(0),
    latencySumMs: integer("latency_sum_ms").notNull().default(0),
    bytesIn: integer("bytes_in").notNull().default(0),
    bytesOut: integer("bytes_out").notNull().default(0),
    // Latency histogram: l00…l15 count requests whose total latency fell in LATENCY_BUCKETS_MS[i]
    // (worker/audit/rollups.ts). Fixed buckets merge by addition, so percentiles over any set of
    // rows and buckets are exact to the bucket bound.
    l00: integer("l00").notNull().default(0),
    l01: integer("l01").notNull().default(0),
    l02: integer("l02").notNull().default(0),
    l03: integer("l03").notNull().default(0),
    l04: integer("l04").notNull().default(0),
    l05: integer("l05").notNull().default(0),
    l06: integer("l06").notNull().default(0),
    l07: integer("l07").notNull().default(0),
    l08: integer("l08").notNull().default(0),
    l09: integer("l09").notNull().default(0),
    l10: integer("l10").notNull().default(0),
    l11: integer("l11").notNull().default(0),
    l12: integer("l12").notNull().default(0),
    l13: integer("l13").notNull().default(0),
    l14: integer("l14").notNull().default(0),
    l15: integer("l15").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.granularity, t.dim, t.value, t.bucket, t.decision] }), index("usage_rollups_bucket_idx").on(t.granularity, t.bucket)],
);
export type UsageRollupRow = typeof usageRollups.$inferSelect;

/**
 * Where a chain's verification starts after retention removed its beginning (or all of it):
 * rows up to `throughSeq` are gone and `throughHash` was the hash of row `throughSeq`.
 * Written in the same batch as the delete, so what remains always verifies.
 */
export const auditCheckpoints = sqliteTable("audit_checkpoints", {
  /** `requests:<YYYY-MM-DD>` or `admin`. */
  chain: text("chain").primaryKey(),
  throughSeq: integer("through_seq").notNull(),
  throughHash: text("through_hash").notNull(),
  deletedRows: integer("deleted_rows").notNull(),
  createdAt: integer("created_at").notNull(),
});
export type AuditCheckpointRow = typeof auditCheckpoints.$inferSelect;
