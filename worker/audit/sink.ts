import type { Env } from "../env";
import type { RequestEvent } from "./event";
import type { AuditOptions } from "./options";
import { EVENT_COLUMNS, isRequestEvent, writeRequestEvents } from "./store";

type SinkMode = "queue" | "d1";

interface Batch {
  readonly mode: SinkMode;
  readonly events: RequestEvent[];
  closed: boolean;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function log(level: "warn" | "error", msg: string, extra: Record<string, unknown>) {
  console.error(JSON.stringify({ level, msg, ...extra }));
}

/**
 * A Queue send that neither resolves nor fails would hold its batch until the runtime ends the
 * waitUntil (~30 s after the response) and lose it. Past this, the batch goes to D1 directly.
 */
export const QUEUE_SEND_TIMEOUT_MS = 3000;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => {
    if (timer !== undefined) clearTimeout(timer);
  });
}

/** Queue sendBatch takes at most 100 messages and 256 KB; stay under both. */
const QUEUE_BATCH = 100;
const QUEUE_BATCH_BYTES = 200_000;

/**
 * A Queue message carrying several events as rows: the field names once, then each event's
 * values in that order. A queue takes at most 5,000 messages a second (one message per event
 * would cap the whole gateway at 5,000 requests a second), and Queues bills a write, a read and a
 * delete per 64 KB of each message, so one message per event would cost ~30–50 times the
 * operations of packs. Rows rather than event objects: a structured clone writes every property
 * name of every object, so 100 events as objects serialize to ~38 KB and as rows to ~19 KB — half
 * the billed bytes, one message per typical flush instead of two or three, and ~12 k instructions
 * a request less in workerd (bench/results/instructions-2026-12-01-split.md). Packs stay under that 64 KB unit (by
 * approxSize, an overestimate). The consumer also accepts the earlier forms — `{ events: [...] }`
 * packs and bare events — so a deploy can change the format while messages are in flight.
 */
export interface EventRows {
  fields: readonly string[];
  rows: unknown[][];
}

/**
 * Every field of a RequestEvent, in the order a row carries them: the stored columns' fields
 * (store.ts), then `keyUsed`, which travels but is not stored.
 */
export const EVENT_FIELDS: readonly (keyof RequestEvent)[] = [...EVENT_COLUMNS.map(([, field]) => field), "keyUsed"];
// A field added to RequestEvent and to neither list fails the build here, not silently in transit.
type Unlisted = Exclude<keyof RequestEvent, (typeof EVENT_COLUMNS)[number][1] | "keyUsed">;
true satisfies [Unlisted] extends [never] ? true : never;
const KNOWN_FIELDS = new Set<string>(EVENT_FIELDS);

const toRow = (e: RequestEvent): unknown[] => EVENT_FIELDS.map((f) => e[f]);

/** The events of a rows pack, built from the pack's own field list (unknown names are ignored). */
function eventsOfRows(fields: readonly unknown[], rows: readonly unknown[]): unknown[] {
  return rows.map((row) => {
    if (!Array.isArray(row)) return null;
    const e: Record<string, unknown> = {};
    fields.forEach((f, i) => {
      // Only RequestEvent's own names: a name like "__proto__" must not reach the object.
      if (typeof f === "string" && KNOWN_FIELDS.has(f) && row[i] !== undefined) e[f] = row[i];
    });
    return e;
  });
}

const PACK_BYTES = 60_000;

/**
 * An upper bound of an event's serialized size as a row (structured clone or JSON: at most two
 * bytes a character) without serializing it: its free-text fields are capped (path 2048, limit
 * state 1000, reason 100 characters; ids and names are short); the other values are numbers,
 * nulls and short tags (at most a tag and a double, 10 bytes, each). Overestimating only makes
 * a pack or a send smaller.
 */
function approxSize(e: RequestEvent): number {
  let n = 300; // 23 values of ≤ 10 bytes, string headers, the row's own header
  for (const v of [e.id, e.path, e.limitState, e.reason, e.userId, e.keyId, e.group, e.route, e.decidedBy, e.code, e.clientIp]) if (v) n += 2 * v.length;
  return n;
}

/** Splits `items` in order into runs of at most `maxCount` items and `maxBytes` (one item alone may exceed it). */
function runs<T>(items: readonly T[], size: (item: T) => number, maxCount: number, maxBytes: number): { items: T[]; bytes: number }[] {
  const out: { items: T[]; bytes: number }[] = [];
  let cur: { items: T[]; bytes: number } = { items: [], bytes: 0 };
  for (const item of items) {
    const n = size(item);
    if (cur.items.length > 0 && (cur.items.length >= maxCount || cur.bytes + n > maxBytes)) {
      out.push(cur);
      cur = { items: [], bytes: 0 };
    }
    cur.items.push(item);
    cur.bytes += n;
  }
  if (cur.items.length) out.push(cur);
  return out;
}

/** The sendBatch calls for `events`: packs of ≤ PACK_BYTES, each call within the binding's limits. */
function queueSends(events: readonly RequestEvent[]): { body: EventRows; bytes: number }[][] {
  const packs = runs(events, approxSize, Infinity, PACK_BYTES).map((r) => ({ body: { fields: EVENT_FIELDS, rows: r.items.map(toRow) }, bytes: r.bytes }));
  return runs(packs, (p) => p.bytes, QUEUE_BATCH, QUEUE_BATCH_BYTES).map((r) => r.items);
}

/**
 * The events a queue message carries — a rows pack, an `{ events }` pack (before rows), or one
 * bare event — with the malformed ones left out (counted in `dropped`); null when the body is
 * none of these.
 */
export function eventsOfMessage(body: unknown): { events: RequestEvent[]; dropped: number } | null {
  if (isRequestEvent(body)) return { events: [body], dropped: 0 };
  if (typeof body !== "object" || body === null) return null;
  const pack = body as Partial<EventRows> & { events?: unknown };
  const list: unknown = Array.isArray(pack.fields) && Array.isArray(pack.rows) ? eventsOfRows(pack.fields, pack.rows) : pack.events;
  if (!Array.isArray(list)) return null;
  const events = list.filter(isRequestEvent);
  return { events, dropped: list.length - events.length };
}

/**
 * Sends events to their sink. Never throws: a failing sink must not change any response
 * (the response is already on its way). Queue failures fall back to D1; D1 failures are retried
 * with backoff; only then are the event ids logged as lost.
 */
export async function deliver(events: readonly RequestEvent[], mode: SinkMode, env: Env, retryBaseMs = 100): Promise<void> {
  if (events.length === 0) return;
  if (mode === "queue" && env.AUDIT_QUEUE) {
    try {
      for (const send of queueSends(events)) {
        // "v8" (structured clone, the binding's default): the push consumer gets the same objects
        // as with "json", for ~3 µs less CPU per event in Miniflare, most of it the consumer's
        // decoding (bench/README.md, "Audit packs").
        await withTimeout(env.AUDIT_QUEUE.sendBatch(send.map(({ body }) => ({ body, contentType: "v8" as const }))), QUEUE_SEND_TIMEOUT_MS);
      }
      return;
    } catch (err) {
      // Some chunks may already be queued: D1 writes are idempotent by request id, so writing
      // all of them directly cannot duplicate anything.
      log("warn", "audit queue send failed; writing to D1 directly", { count: events.length, error: String(err) });
    }
  }
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      await writeRequestEvents(env.DB, events);
      return;
    } catch (err) {
      log("warn", "audit D1 write failed", { count: events.length, attempt, error: String(err) });
      if (attempt < 3) await sleep(retryBaseMs * 4 ** attempt);
    }
  }
  log("error", "audit events lost", { count: events.length, ids: events.map((e) => e.id) });
}

/**
 * Per-isolate batching of request events, so auditing costs a small fraction of a request:
 * the first event of a batch opens a `waitUntil` that flushes the batch after
 * `flushIntervalMs`, or at once when it reaches `maxBatch` (the request that fills it flushes
 * it, in its own `waitUntil`). Guarantee: every event is handed to a `waitUntil` that flushes
 * it, so it is sent before the isolate can be evicted — a batch never waits on a request that
 * has already finished its own `waitUntil`.
 */
export class AuditBuffer {
  private readonly open = new Map<SinkMode, Batch>();

  add(event: RequestEvent, opts: AuditOptions, env: Env, waitUntil: (p: Promise<unknown>) => void): void {
    const mode: SinkMode = opts.sink === "d1" || !env.AUDIT_QUEUE ? "d1" : "queue";
    let batch = this.open.get(mode);
    if (!batch) {
      const fresh: Batch = { mode, events: [], closed: false };
      batch = fresh;
      this.open.set(mode, fresh);
      waitUntil(
        sleep(opts.flushIntervalMs).then(() => {
          if (!fresh.closed) return this.flush(fresh, env);
        }),
      );
    }
    batch.events.push(event);
    if (batch.events.length >= opts.maxBatch) waitUntil(this.flush(batch, env));
  }

  private flush(batch: Batch, env: Env): Promise<void> {
    batch.closed = true;
    if (this.open.get(batch.mode) === batch) this.open.delete(batch.mode);
    return deliver(batch.events, batch.mode, env);
  }
}

/** One buffer per isolate, shared by every request it serves. */
export const isolateAuditBuffer = new AuditBuffer();
