import type { Env } from "../env";
import type { RequestEvent } from "./event";
import type { AuditOptions } from "./options";
import { writeRequestEvents } from "./store";

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
 * An upper bound of an event's JSON size without serializing it: its free-text fields are
 * capped (path 2048, limit state 1000, reason 100 characters; ids and names are short), the
 * rest is a fixed shape. Overestimating only makes a chunk smaller.
 */
function approxSize(e: RequestEvent): number {
  let n = 1000; // field names, numbers, ids, per-message overhead
  for (const v of [e.path, e.limitState, e.reason, e.userId, e.keyId, e.group, e.route, e.decidedBy, e.code, e.clientIp]) if (v) n += 2 * v.length;
  return n;
}

function queueChunks(events: readonly RequestEvent[]): RequestEvent[][] {
  const out: RequestEvent[][] = [];
  let cur: RequestEvent[] = [];
  let bytes = 0;
  for (const e of events) {
    const n = approxSize(e);
    if (cur.length > 0 && (cur.length >= QUEUE_BATCH || bytes + n > QUEUE_BATCH_BYTES)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(e);
    bytes += n;
  }
  if (cur.length) out.push(cur);
  return out;
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
      for (const chunk of queueChunks(events)) {
        await withTimeout(env.AUDIT_QUEUE.sendBatch(chunk.map((body) => ({ body, contentType: "json" as const }))), QUEUE_SEND_TIMEOUT_MS);
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

  /** Events waiting in open batches (for tests and the benchmark). */
  get pending(): number {
    let n = 0;
    for (const b of this.open.values()) n += b.events.length;
    return n;
  }
}

/** One buffer per isolate, shared by every request it serves. */
export const isolateAuditBuffer = new AuditBuffer();
