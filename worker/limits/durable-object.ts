import { DurableObject } from "cloudflare:workers";
import {
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
 * The output gate holds each reply until its write is durable, so a granted token is never
 * forgotten by a restart.
 */
export class LimiterDurableObject extends DurableObject {
  lease(req: LeaseRequest): LeaseReply {
    const kv = this.ctx.storage.kv;
    const slot = stateSlot(req.spec);
    const now = Date.now();
    const { state, reply } =
      req.spec.algorithm === "token-bucket"
        ? leaseBucket(kv.get<BucketState>(slot), req, now)
        : req.spec.algorithm === "period"
          ? leasePeriod(kv.get<PeriodState>(slot), req, now)
          : leaseWindow(kv.get<WindowState>(slot), req, now);
    kv.put(slot, state);
    return reply;
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
  reset(spec: LimitSpec): void {
    const kv = this.ctx.storage.kv;
    const slot = stateSlot(spec);
    const now = Date.now();
    if (spec.algorithm === "token-bucket") kv.put(slot, resetBucket(kv.get<BucketState>(slot), spec, now));
    else if (spec.algorithm === "period") kv.put(slot, resetPeriod(kv.get<PeriodState>(slot), spec, now));
    else kv.delete(slot);
  }
}

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
