/**
 * The one interface both limiter backends (Durable Objects, Upstash) implement, and the shapes
 * that travel between an isolate and a backend. Every duration a backend returns is RELATIVE
 * (milliseconds from when the backend handled the call): the isolate adds it to the time it SENT
 * the call, which is never later than when the backend handled it, so a lease can only ever
 * expire early in the isolate's eyes, never late, whatever the clock skew between the two.
 */

/** How a limit counts. `period` is a quota's calendar period (UTC day / ISO week / month). */
export type Algorithm = "fixed-window" | "sliding-window" | "token-bucket" | "period";

/** One limit as the backend sees it: the algorithm and its numbers, already overridden. */
export interface LimitSpec {
  algorithm: Algorithm;
  /** Requests (or quota units) allowed per window / period; bucket capacity for token-bucket. */
  limit: number;
  /** Window length in ms (fixed/sliding), or the time to refill a full bucket (token-bucket). */
  windowMs: number;
  /** For `period`: start and end (ms since epoch, UTC) of the calendar period, computed by the isolate. */
  periodStart?: number;
  periodEnd?: number;
}

export interface LeaseRequest {
  spec: LimitSpec;
  /** Tokens the isolate would like to hold (≥ 1). The backend grants at most this, often fewer. */
  want: number;
  /**
   * Unspent tokens of an expired lease handed back (token-bucket and period only: a fixed or
   * sliding window lease expires with its window, when there is nothing left to give back to).
   */
  give: number;
  /** The `window` of the lease `give` comes from; the backend ignores tokens of another window. */
  giveWindow: number;
}

/** A backend's answer. Counters are already updated: `granted` tokens are spent from the limit. */
export interface LeaseReply {
  granted: number;
  /** What is left for everyone after this grant (not counting tokens other isolates hold). */
  remaining: number;
  /** ms until at least one token is available again (0 when some remain). */
  retryMs: number;
  /** ms until the window ends / the period ends / the bucket is full again. */
  resetMs: number;
  /** ms the granted tokens may be spent for. */
  ttlMs: number;
  /**
   * Identifies the counter the grant was counted in (echoed back as `giveWindow`): the window
   * start for fixed/sliding windows; for buckets and quotas the counter's generation, which an
   * admin reset changes, so tokens leased before a reset are never credited to the new count.
   */
  window: number;
}

/** Current usage without changing anything (admin status). */
export interface UsageReport {
  used: number;
  remaining: number;
  resetMs: number;
  /** The counter `used` is of, as a lease of it reports it (`LeaseReply.window`). */
  window: number;
}

/**
 * A limiter backend. Implementations must make `lease` atomic per key: two concurrent leases on
 * one key never both get the same token. That single property is what makes the gateway exact.
 */
export interface LimiterBackend {
  readonly kind: "durable-object" | "upstash";
  lease(key: string, req: LeaseRequest): Promise<LeaseReply>;
  usage(key: string, spec: LimitSpec): Promise<UsageReport>;
  reset(key: string, spec: LimitSpec): Promise<void>;
}

/** Thrown (or used to wrap a backend error) when a backend fails or exceeds its time budget. */
export class LimiterUnavailableError extends Error {
  constructor(
    readonly backend: string,
    /** `backing-off`: not asked, because a call for the same subject failed or timed out under NEGATIVE_TTL_MS ago. */
    readonly reason: "timeout" | "error" | "backing-off",
    cause?: unknown,
  ) {
    super(`limiter backend ${backend} ${reason === "timeout" ? "timed out" : reason === "error" ? "failed" : "not asked: it failed moments ago"}${cause ? `: ${String(cause)}` : ""}`);
    this.name = "LimiterUnavailableError";
  }
}
