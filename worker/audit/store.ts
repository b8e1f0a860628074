import { dayChain, sealChain } from "./chain";
import type { RequestEvent } from "./event";
import { ROLLUP_COLUMNS, rollupIncrements } from "./rollups";

/** Stored columns of an event, in the order of the tuples sent to D1. */
/** Each stored column of `request_events` and the RequestEvent field it holds, in order. */
export const EVENT_COLUMNS = [
  ["id", "id"],
  ["ts", "ts"],
  ["user_id", "userId"],
  ["key_id", "keyId"],
  ["group", "group"],
  ["route", "route"],
  ["method", "method"],
  ["path", "path"],
  ["client_ip", "clientIp"],
  ["country", "country"],
  ["colo", "colo"],
  ["decision", "decision"],
  ["decided_by", "decidedBy"],
  ["code", "code"],
  ["reason", "reason"],
  ["status", "status"],
  ["origin_status", "originStatus"],
  ["bytes_in", "bytesIn"],
  ["bytes_out", "bytesOut"],
  ["latency_ms", "latencyMs"],
  ["origin_latency_ms", "originLatencyMs"],
  ["limit_state", "limitState"],
] as const satisfies ReadonlyArray<readonly [string, keyof RequestEvent]>;

// D1 caps a statement at 100 KB: JSON parameters are chunked below that.
const MAX_JSON_BYTES = 80_000;

function chunkByJsonSize<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let size = 2;
  for (const item of items) {
    const n = JSON.stringify(item).length + 1;
    if (cur.length > 0 && size + n > MAX_JSON_BYTES) {
      out.push(cur);
      cur = [];
      size = 2;
    }
    cur.push(item);
    size += n;
  }
  if (cur.length) out.push(cur);
  return out;
}

const q = (c: string) => `"${c}"`;

// seq = the chain's max + row_number over this statement's rows: computed inside the batch's
// transaction, so concurrent writers (isolates, consumer invocations) never collide or leave gaps.
const INSERT_EVENTS =
  `INSERT INTO request_events (${EVENT_COLUMNS.map(([c]) => q(c)).join(", ")}, "chain", "seq") ` +
  `SELECT ${EVENT_COLUMNS.map((_, i) => `j.value ->> ${i}`).join(", ")}, ?2, ` +
  `(SELECT COALESCE(MAX("seq"), 0) FROM request_events WHERE "chain" = ?2) + ROW_NUMBER() OVER (ORDER BY j.key) ` +
  `FROM json_each(?1) AS j`;

const COUNTERS = ROLLUP_COLUMNS.slice(5);
const UPSERT_ROLLUPS =
  `INSERT INTO usage_rollups (${ROLLUP_COLUMNS.map(q).join(", ")}) ` +
  `SELECT ${ROLLUP_COLUMNS.map((_, i) => `j.value ->> ${i}`).join(", ")} FROM json_each(?1) AS j WHERE true ` +
  `ON CONFLICT ("granularity", "dim", "value", "bucket", "decision") DO UPDATE SET ` +
  COUNTERS.map((c) => `${q(c)} = ${q(c)} + excluded.${q(c)}`).join(", ");

// last_used_at moves forward only, from the newest authenticated event per key in the batch.
const TOUCH_KEYS =
  `UPDATE api_keys SET "last_used_at" = j.value FROM json_each(?1) AS j ` +
  `WHERE api_keys."id" = j.key AND (api_keys."last_used_at" IS NULL OR api_keys."last_used_at" < j.value)`;

const isDuplicateEvent = (err: unknown) => /UNIQUE constraint failed: request_events\.id/i.test(String((err as { cause?: unknown })?.cause ?? "") + String(err));

const REQUEST_ID = /^req_[0-9a-f]{32}$/;

/** Shape check for events arriving from the queue: anything else is dropped (and logged). */
export function isRequestEvent(v: unknown): v is RequestEvent {
  const e = v as RequestEvent;
  return (
    typeof e === "object" &&
    e !== null &&
    typeof e.id === "string" &&
    REQUEST_ID.test(e.id) &&
    Number.isSafeInteger(e.ts) &&
    typeof e.method === "string" &&
    typeof e.path === "string" &&
    typeof e.decision === "string" &&
    Number.isInteger(e.status) &&
    Number.isFinite(e.latencyMs)
  );
}

/**
 * Stores a batch of request events exactly once: events whose id is already stored are
 * skipped, and the insert, the usage rollups and the keys' `last_used_at` move in ONE D1
 * batch (one transaction), so a redelivered or retried batch never double-counts. If a
 * concurrent writer stores one of the same ids in between, the transaction fails on the
 * primary key and the whole thing is retried. The day chain is sealed afterwards.
 *
 * @example await writeRequestEvents(env.DB, events) // from the queue consumer or a direct flush
 */
export async function writeRequestEvents(d1: D1Database, events: readonly RequestEvent[], now = Date.now()): Promise<{ written: number; duplicates: number }> {
  const unique = [...new Map(events.map((e) => [e.id, e])).values()].sort((a, b) => a.ts - b.ts || (a.id < b.id ? -1 : 1));
  if (unique.length === 0) return { written: 0, duplicates: events.length };
  const chain = dayChain(now);
  for (let attempt = 0; ; attempt++) {
    const ids = unique.map((e) => e.id);
    const existing = new Set<string>();
    for (const part of chunkByJsonSize(ids)) {
      const { results } = await d1.prepare(`SELECT "id" FROM request_events WHERE "id" IN (SELECT value FROM json_each(?1))`).bind(JSON.stringify(part)).all<{ id: string }>();
      for (const r of results) existing.add(r.id);
    }
    const fresh = unique.filter((e) => !existing.has(e.id));
    if (fresh.length === 0) return { written: 0, duplicates: events.length };

    const statements: D1PreparedStatement[] = [];
    for (const part of chunkByJsonSize(fresh.map((e) => EVENT_COLUMNS.map(([, k]) => e[k] ?? null)))) {
      statements.push(d1.prepare(INSERT_EVENTS).bind(JSON.stringify(part), chain));
    }
    for (const part of chunkByJsonSize(rollupIncrements(fresh))) statements.push(d1.prepare(UPSERT_ROLLUPS).bind(JSON.stringify(part)));
    const used: Record<string, number> = {};
    for (const e of fresh) if (e.keyUsed && e.keyId) used[e.keyId] = Math.max(used[e.keyId] ?? 0, e.ts);
    if (Object.keys(used).length) statements.push(d1.prepare(TOUCH_KEYS).bind(JSON.stringify(used)));
    try {
      await d1.batch(statements);
    } catch (err) {
      if (isDuplicateEvent(err) && attempt < 3) continue;
      throw err;
    }
    // Sealing failures are not write failures: the rows are stored; the next write, verify's
    // caller or the cron seals them.
    await sealChain(d1, "requests", chain).catch((err: unknown) =>
      console.error(JSON.stringify({ level: "warn", msg: "audit chain seal failed", chain, error: String(err) })),
    );
    return { written: fresh.length, duplicates: events.length - fresh.length };
  }
}
