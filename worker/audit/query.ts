import { and, asc, desc, eq, gt, gte, like, lt, or, type Column, type SQL } from "drizzle-orm";
import type { Database } from "../db";
import { adminAudit, requestEvents, usageRollups, type AdminAuditRow, type RequestEventRow } from "../db/schema";
import { GatewayError } from "../errors";
import type { RequestEvent } from "./event";
import { GRANULARITIES, HISTOGRAM_COLUMNS, histogramQuantile, type Dimension, type Granularity } from "./rollups";

/**
 * Keyset condition on (time, id): rows strictly before the cursor (newest-first pages) or after
 * it (oldest-first exports). `time` takes the column's own value (a number, or a Date for
 * timestamp columns).
 */
function pastCursor(time: Column, id: Column, c: { t: number | Date; id: string } | undefined, direction: "before" | "after"): SQL | undefined {
  if (!c) return undefined;
  const cmp = direction === "before" ? lt : gt;
  return or(cmp(time, c.t), and(eq(time, c.t), cmp(id, c.id)));
}

// ── cursors: base64url of "<time>.<id>", for keyset pagination on (time, id) ──────────────
const b64url = (s: string) => btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
export const encodeTimeCursor = (t: number, id: string) => b64url(`${t}.${id}`);
export function decodeTimeCursor(cursor: string): { t: number; id: string } {
  try {
    const m = /^(\d{1,15})\.([a-z]{3,4}_[0-9A-Za-z]{1,64})$/.exec(atob(cursor.replaceAll("-", "+").replaceAll("_", "/")));
    if (m) return { t: Number(m[1]), id: m[2]! };
  } catch {
    // fall through
  }
  throw new GatewayError("VALIDATION_FAILED", "The cursor is not valid.", { errors: [{ path: "cursor", message: "invalid cursor" }] });
}

// ── request events ─────────────────────────────────────────────────────────────
/** A stored request event as the admin API returns it: the event's fields plus its place in the chain. */
export type RequestEventView = Omit<RequestEvent, "ts" | "limitState" | "keyUsed"> & {
  timestamp: string;
  limitState: unknown;
  chain: string;
  seq: number;
  hash: string | null;
};

export const requestEventView = (r: RequestEventRow): RequestEventView => ({
  id: r.id,
  timestamp: new Date(r.ts).toISOString(),
  userId: r.userId,
  keyId: r.keyId,
  group: r.group,
  route: r.route,
  method: r.method,
  path: r.path,
  clientIp: r.clientIp,
  country: r.country,
  colo: r.colo,
  decision: r.decision as RequestEventView["decision"],
  decidedBy: r.decidedBy,
  code: r.code,
  reason: r.reason,
  status: r.status,
  originStatus: r.originStatus,
  bytesIn: r.bytesIn,
  bytesOut: r.bytesOut,
  latencyMs: r.latencyMs,
  originLatencyMs: r.originLatencyMs,
  limitState: r.limitState ? JSON.parse(r.limitState) : null,
  chain: r.chain,
  seq: r.seq,
  hash: r.hash,
});

export interface RequestEventFilter {
  userId?: string | undefined;
  keyId?: string | undefined;
  route?: string | undefined;
  group?: string | undefined;
  decision?: "allowed" | "refused" | "error" | undefined;
  decidedBy?: string | undefined;
  code?: string | undefined;
  statusClass?: "1xx" | "2xx" | "3xx" | "4xx" | "5xx" | undefined;
  /** A limit of the request had this outcome (worker/limits/engine.ts, LimitOutcome). */
  limitOutcome?: "refused" | "dry-run-refused" | "fail-open" | "fail-closed" | undefined;
  from?: Date | undefined;
  to?: Date | undefined;
}

function requestConditions(f: RequestEventFilter): (SQL | undefined)[] {
  const cls = f.statusClass ? Number(f.statusClass[0]) * 100 : undefined;
  return [
    f.userId ? eq(requestEvents.userId, f.userId) : undefined,
    f.keyId ? eq(requestEvents.keyId, f.keyId) : undefined,
    f.route ? eq(requestEvents.route, f.route) : undefined,
    f.group ? eq(requestEvents.group, f.group) : undefined,
    f.decision ? eq(requestEvents.decision, f.decision) : undefined,
    f.decidedBy ? eq(requestEvents.decidedBy, f.decidedBy) : undefined,
    f.code ? eq(requestEvents.code, f.code) : undefined,
    cls !== undefined ? and(gte(requestEvents.status, cls), lt(requestEvents.status, cls + 100)) : undefined,
    // limit_state is the JSON list of the request's limit outcomes; limit names cannot hold a quote.
    f.limitOutcome ? like(requestEvents.limitState, `%"outcome":"${f.limitOutcome}"%`) : undefined,
    f.from ? gte(requestEvents.ts, f.from.getTime()) : undefined,
    f.to ? lt(requestEvents.ts, f.to.getTime()) : undefined,
  ];
}

/** Newest first, keyset-paginated on (ts, id). */
export async function listRequestEvents(db: Database, f: RequestEventFilter & { limit: number; cursor?: string | undefined }) {
  const c = f.cursor ? decodeTimeCursor(f.cursor) : undefined;
  const rows = await db
    .select()
    .from(requestEvents)
    .where(and(...requestConditions(f), pastCursor(requestEvents.ts, requestEvents.id, c, "before")))
    .orderBy(desc(requestEvents.ts), desc(requestEvents.id))
    .limit(f.limit + 1);
  const more = rows.length > f.limit;
  const page = rows.slice(0, f.limit);
  const last = page.at(-1);
  return { data: page.map(requestEventView), nextCursor: more && last ? encodeTimeCursor(last.ts, last.id) : null };
}

// ── admin events ───────────────────────────────────────────────────────────────
export interface AdminEventView {
  id: string;
  timestamp: string;
  actor: string;
  action: string;
  targetType: string;
  targetId: string;
  requestId: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  seq: number | null;
  hash: string | null;
}

export const adminEventView = (r: AdminAuditRow): AdminEventView => ({
  id: r.id,
  timestamp: r.createdAt.toISOString(),
  actor: r.actor,
  action: r.action,
  targetType: r.targetType,
  targetId: r.targetId,
  requestId: r.requestId,
  before: r.before ?? null,
  after: r.after ?? null,
  seq: r.seq ?? null,
  hash: r.hash ?? null,
});

export interface AdminEventFilter {
  actor?: string | undefined;
  action?: string | undefined;
  targetType?: string | undefined;
  targetId?: string | undefined;
  from?: Date | undefined;
  to?: Date | undefined;
}

const adminConditions = (f: AdminEventFilter) => [
  f.actor ? eq(adminAudit.actor, f.actor) : undefined,
  f.action ? eq(adminAudit.action, f.action) : undefined,
  f.targetType ? eq(adminAudit.targetType, f.targetType) : undefined,
  f.targetId ? eq(adminAudit.targetId, f.targetId) : undefined,
  f.from ? gte(adminAudit.createdAt, f.from) : undefined,
  f.to ? lt(adminAudit.createdAt, f.to) : undefined,
];

export async function listAdminEvents(db: Database, f: AdminEventFilter & { limit: number; cursor?: string | undefined }) {
  const c = f.cursor ? decodeTimeCursor(f.cursor) : undefined;
  const rows = await db
    .select()
    .from(adminAudit)
    .where(
      and(
        ...adminConditions(f),
        pastCursor(adminAudit.createdAt, adminAudit.id, c && { t: new Date(c.t), id: c.id }, "before"),
      ),
    )
    .orderBy(desc(adminAudit.createdAt), desc(adminAudit.id))
    .limit(f.limit + 1);
  const more = rows.length > f.limit;
  const page = rows.slice(0, f.limit);
  const last = page.at(-1);
  return { data: page.map(adminEventView), nextCursor: more && last ? encodeTimeCursor(last.createdAt.getTime(), last.id) : null };
}

// ── export ─────────────────────────────────────────────────────────────────────
const EXPORT_PAGE = 500;

/**
 * NDJSON of a log over a time range, oldest first, one event per line. Pulled page by page
 * (keyset on time, id) as the client reads, so an export of any size holds one page in memory.
 */
export function exportNdjson(db: Database, log: "requests" | "admin", f: RequestEventFilter & AdminEventFilter): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  let after: { t: number; id: string } | undefined;
  let done = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (done) return controller.close();
      let lines: string[];
      if (log === "requests") {
        const rows = await db
          .select()
          .from(requestEvents)
          .where(and(...requestConditions(f), pastCursor(requestEvents.ts, requestEvents.id, after, "after")))
          .orderBy(asc(requestEvents.ts), asc(requestEvents.id))
          .limit(EXPORT_PAGE);
        const last = rows.at(-1);
        if (last) after = { t: last.ts, id: last.id };
        done = rows.length < EXPORT_PAGE;
        lines = rows.map((r) => JSON.stringify(requestEventView(r)));
      } else {
        const rows = await db
          .select()
          .from(adminAudit)
          .where(
            and(
              ...adminConditions(f),
              pastCursor(adminAudit.createdAt, adminAudit.id, after && { t: new Date(after.t), id: after.id }, "after"),
            ),
          )
          .orderBy(asc(adminAudit.createdAt), asc(adminAudit.id))
          .limit(EXPORT_PAGE);
        const last = rows.at(-1);
        if (last) after = { t: last.createdAt.getTime(), id: last.id };
        done = rows.length < EXPORT_PAGE;
        lines = rows.map((r) => JSON.stringify(adminEventView(r)));
      }
      if (lines.length) controller.enqueue(enc.encode(lines.join("\n") + "\n"));
      if (done) controller.close();
    },
  });
}

// ── usage ──────────────────────────────────────────────────────────────────────
export interface UsageBucket {
  value: string;
  bucket: string;
  requests: number;
  status: Record<"1xx" | "2xx" | "3xx" | "4xx" | "5xx", number>;
  decisions: Record<string, number>;
  latencyMs: { avg: number | null; p50: number | null; p90: number | null; p95: number | null; p99: number | null };
  bytesIn: number;
  bytesOut: number;
}

const MAX_USAGE_ROWS = 20_000;

/**
 * Usage per bucket from the rollups (never from the events): counts by status class and by
 * decision, and latency percentiles from the merged fixed histogram (see rollups.ts).
 */
export async function queryUsage(
  db: Database,
  q: { by: Dimension; value?: string | undefined; granularity: Granularity; from: Date; to: Date },
): Promise<{ by: Dimension; granularity: Granularity; from: string; to: string; data: UsageBucket[] }> {
  const size = GRANULARITIES[q.granularity];
  const from = Math.floor(q.from.getTime() / size) * size;
  const rows = await db
    .select()
    .from(usageRollups)
    .where(
      and(
        eq(usageRollups.granularity, q.granularity),
        eq(usageRollups.dim, q.by),
        q.by === "all" ? eq(usageRollups.value, "*") : q.value !== undefined ? eq(usageRollups.value, q.value) : undefined,
        gte(usageRollups.bucket, from),
        lt(usageRollups.bucket, q.to.getTime()),
      ),
    )
    .orderBy(asc(usageRollups.value), asc(usageRollups.bucket))
    .limit(MAX_USAGE_ROWS + 1);
  if (rows.length > MAX_USAGE_ROWS) {
    throw new GatewayError("VALIDATION_FAILED", "The range holds too many buckets; narrow it, use a coarser granularity or filter by value.", {
      errors: [{ path: "from", message: "range too large" }],
    });
  }
  const out = new Map<string, UsageBucket & { hist: number[]; latencySum: number }>();
  for (const r of rows) {
    const key = `${r.value}|${r.bucket}`;
    let b = out.get(key);
    if (!b) {
      b = {
        value: r.value,
        bucket: new Date(r.bucket).toISOString(),
        requests: 0,
        status: { "1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0 },
        decisions: {},
        latencyMs: { avg: null, p50: null, p90: null, p95: null, p99: null },
        bytesIn: 0,
        bytesOut: 0,
        hist: new Array<number>(HISTOGRAM_COLUMNS.length).fill(0),
        latencySum: 0,
      };
      out.set(key, b);
    }
    b.requests += r.requests;
    b.status["1xx"] += r.s1xx;
    b.status["2xx"] += r.s2xx;
    b.status["3xx"] += r.s3xx;
    b.status["4xx"] += r.s4xx;
    b.status["5xx"] += r.s5xx;
    b.decisions[r.decision] = (b.decisions[r.decision] ?? 0) + r.requests;
    b.bytesIn += r.bytesIn;
    b.bytesOut += r.bytesOut;
    b.latencySum += r.latencySumMs;
    HISTOGRAM_COLUMNS.forEach((col, i) => (b!.hist[i]! += (r as unknown as Record<string, number>)[col] ?? 0));
  }
  const data = [...out.values()].map(({ hist, latencySum, ...b }) => ({
    ...b,
    latencyMs: {
      avg: b.requests ? Math.round((latencySum / b.requests) * 10) / 10 : null,
      p50: histogramQuantile(hist, 0.5),
      p90: histogramQuantile(hist, 0.9),
      p95: histogramQuantile(hist, 0.95),
      p99: histogramQuantile(hist, 0.99),
    },
  }));
  return { by: q.by, granularity: q.granularity, from: new Date(from).toISOString(), to: q.to.toISOString(), data };
}
