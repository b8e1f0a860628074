import { DurableObject } from "cloudflare:workers";
import {
  BUCKET_LEASE_TTL_MS,
  leaseBucket,
  leasePeriod,
  leaseWindow,
  resetBucket,
  resetPeriod,
  stateSlot,
  usageBucket,
  usagePeriod,
  usageWindow,
  type BucketState,
  type PeriodState,
  type WindowState,
} from "./algorithms";
import type { LeaseReply, LeaseRequest, LimiterBackend, LimitSpec, UsageReport } from "./types";

/**
 * One Durable Object per limited subject (limit name + subject, e.g. `api|u:usr_…`). Its methods
 * read and write storage through the synchronous SQLite-backed KV API with no `await` in
 * between, so each call runs to completion before the next starts: a lease is atomic, and the
 * object is the single strongly consistent counter for its subject, wherever the caller runs.
 * (The one `await`, on the deletion alarm, comes after every read and write of the counter.)
 * The output gate holds each reply until its write is durable, so a granted token is never
 * forgotten by a restart.
 */
export class LimiterDurableObject extends DurableObject {
  async lease(req: LeaseRequest): Promise<LeaseReply> {
    const kv = this.ctx.storage.kv;
    const slot = stateSlot(req.spec);
    const now = Date.now();
    const { spec } = req;
    let reply: LeaseReply;
    if (spec.algorithm === "token-bucket") {
      const r = leaseBucket(kv.get<BucketState>(slot), req, now);
      kv.put(slot, r.state);
      // Once full again, the bucket is what a missing one is (its generation aside: tokens of the
      // old one handed back later are then not credited, which only under-admits).
      await this.keepUntil(now + bucketFullInMs(r.state, spec) + BUCKET_LEASE_TTL_MS, spec.windowMs);
      reply = r.reply;
    } else if (spec.algorithm === "period") {
      const r = leasePeriod(kv.get<PeriodState>(slot), req, now);
      kv.put(slot, r.state);
      await this.keepUntil(spec.periodEnd! + STALE_MARGIN_MS, 0);
      reply = r.reply;
    } else {
      const r = leaseWindow(kv.get<WindowState>(slot), req, now);
      kv.put(slot, r.state);
      // Two windows on, neither this window's count nor (as the previous one) its weight matters.
      await this.keepUntil(r.state.ws + 2 * spec.windowMs, spec.windowMs);
      reply = r.reply;
    }
    return reply;
  }

  /**
   * Storage lives until `until`, then the alarm deletes it: a counter past its window, period or
   * refill reads as a new one, so keeping it would only grow storage for ever (one object per
   * subject: every client IPv6 /64 of an anonymous limit makes one). Upstash keys expire likewise.
   * The alarm is set `slack` past the deadline, so that a steady subject moves it at most every
   * other window (a quota once a period), not on every lease call.
   */
  private async keepUntil(until: number, slack: number): Promise<void> {
    const kv = this.ctx.storage.kv;
    const current = kv.get<number>(STALE_AT);
    if (current !== undefined && current >= until) return;
    kv.put(STALE_AT, until + slack);
    await this.ctx.storage.setAlarm(until + slack);
  }

  override async alarm(): Promise<void> {
    const until = this.ctx.storage.kv.get<number>(STALE_AT);
    // A lease since the alarm was set may have pushed the deadline later.
    if (until !== undefined && Date.now() < until) await this.ctx.storage.setAlarm(until);
    else await this.ctx.storage.deleteAll();
  }

  usage(spec: LimitSpec): UsageReport {
    const kv = this.ctx.storage.kv;
    const slot = stateSlot(spec);
    const now = Date.now();
    if (spec.algorithm === "token-bucket") return usageBucket(kv.get<BucketState>(slot), spec, now);
    if (spec.algorithm === "period") return usagePeriod(kv.get<PeriodState>(slot), spec, now);
    return usageWindow(kv.get<WindowState>(slot), spec, now);
  }

  /**
   * Forgets usage. Buckets and quotas keep a record of the reset (a new generation), so tokens an
   * isolate leased before it and hands back after it are not credited to the new count.
   */
  async reset(spec: LimitSpec): Promise<void> {
    const kv = this.ctx.storage.kv;
    const slot = stateSlot(spec);
    const now = Date.now();
    if (spec.algorithm === "token-bucket") {
      kv.put(slot, resetBucket(kv.get<BucketState>(slot), spec, now));
      await this.keepUntil(now + BUCKET_LEASE_TTL_MS, 0);
    } else if (spec.algorithm === "period") {
      kv.put(slot, resetPeriod(kv.get<PeriodState>(slot), spec, now));
      await this.keepUntil(spec.periodEnd! + STALE_MARGIN_MS, 0);
    } else kv.delete(slot);
  }
}

/** Where an object keeps the time its storage may be deleted (see keepUntil). */
const STALE_AT = "staleAt";
/** Kept a day past a quota's period, as Upstash keeps its key: a call from a lagging clock must not find a fresh count. */
const STALE_MARGIN_MS = 86_400_000;

const bucketFullInMs = (s: BucketState, spec: LimitSpec): number =>
  spec.limit >= 1 ? Math.ceil(Math.max(0, spec.limit - s.tokens) * (spec.windowMs / spec.limit)) : 0;

type LimiterStub = DurableObjectStub<LimiterDurableObject>;

/** The Durable Object backend: the embedded default, nothing external to run. */
export function durableObjectBackend(namespace: DurableObjectNamespace<LimiterDurableObject>): LimiterBackend {
  const stub = (key: string): LimiterStub => namespace.get(namespace.idFromName(key));
  return {
    kind: "durable-object",
    // Awaited inside async functions so callers get native promises (RPC promises are thenables).
    lease: async (key, req) => (await stub(key).lease(req)) as LeaseReply,
    usage: async (key, spec) => (await stub(key).usage(spec)) as UsageReport,
    reset: async (key, spec) => {
      await stub(key).reset(spec);
    },
  };
}
