import { LimiterUnavailableError, type LeaseReply, type LimitSpec } from "./types";

/**
 * Token leasing: how a subject far from its limit avoids a backend round trip per request.
 *
 * GUARANTEE (never over-admitting): an isolate admits a request only by spending a token the
 * backend has already counted (granted in a lease). So across every isolate and every gateway
 * sharing a backend, admissions in a window ≤ tokens granted in it ≤ the limit. A lease is spent
 * only until its ttl (measured from when the lease call was SENT, so clock skew can only shorten
 * it), and window leases never outlive their window, so a token cannot be carried into a window
 * that did not count it.
 *
 * The price is under-admission, bounded: tokens an isolate holds and does not spend are lost to
 * everyone else until they expire (fixed/sliding: at the window's end) or are handed back
 * (token-bucket and quota leases go back with the isolate's next lease call). Grants shrink as
 * the budget runs out (the backend gives at most a quarter of what is left, and 1 near the end),
 * so near the limit little can be stranded, and a limit of N with one busy isolate still admits
 * exactly N.
 *
 * Concurrency inside one isolate: at most one lease call per subject is in flight; concurrent
 * requests wait for it and share its grant, so a burst costs one round trip, not one per request.
 * However many calls a request waits on or makes (another request's call, a grant others took
 * first or one dead on arrival, then a call of its own), its whole wait is bounded by one
 * deadline, `timeoutMs` from when it started acquiring; past it, the limit's fail mode decides.
 * A refusal is remembered for min(retry, NEGATIVE_TTL_MS) from when it arrived (and cleared when
 * an admin changes overrides in this isolate), so a client hammering a spent limit
 * does not turn each refused request into a backend call either. So is a failed or timed-out
 * call, for NEGATIVE_TTL_MS: while a backend is down or stalled, the subject's next requests get
 * their limit's fail mode at once instead of each waiting out `timeoutMs` again, and the backend
 * is asked about the subject at most once a second from this isolate.
 */
export const NEGATIVE_TTL_MS = 1_000;

/** Lease calls in a row whose grant had expired on arrival before one request gives up (see acquireFrom). */
const MAX_EXPIRED_ON_ARRIVAL = 3;

export interface Decision {
  allowed: boolean;
  /** What is left, as far as this isolate knows: the backend's remaining plus tokens it holds. */
  remaining: number;
  /** ms until a token is available (for Retry-After) when refused. */
  retryMs: number;
  /** ms until the window / period resets. */
  resetMs: number;
  /** Whether this decision needed a backend call (for tests, logs and benchmarks). */
  roundTrip: boolean;
}

/** What one isolate holds for one subject (one per backend, subject and spec slot). */
export interface LeaseState {
  tokens: number;
  /** Local time until which `tokens` may be spent. */
  expiresAt: number;
  window: number;
  /** Whether unspent tokens can be handed back (bucket, period). */
  returnable: boolean;
  backendRemaining: number;
  /** Local time at which the backend's reset/retry figures were measured, and the figures. */
  measuredAt: number;
  resetMs: number;
  retryMs: number;
  /** While refused: local time until which refusals are answered without asking the backend. */
  refusedUntil: number;
  /** After a failed or timed-out call: local time until which the backend is not asked (fail mode at once). */
  unavailableUntil: number;
  inflight: Promise<void> | undefined;
}

export interface AcquireOptions {
  /** Most tokens to ask for at once (1 = no leasing: every request asks the backend). */
  leaseMax: number;
  /** Bounded wait for the backend (`timeoutMs`); over it, the call fails with LimiterUnavailableError. */
  call: (want: number, give: number, giveWindow: number) => Promise<LeaseReply>;
  /**
   * Bound on this request's whole wait, from when `acquireFrom` starts, whatever calls (its own or
   * other requests') it waits on: past it, LimiterUnavailableError ("timeout") for `backend`.
   * Each call is bounded by the same figure on its own (`call`). Absent: no overall bound.
   */
  timeoutMs?: number;
  backend?: string;
  /**
   * Gets each backend call this request starts (settled, never rejecting). Other requests of the
   * isolate may wait on that call, so the request that started it hands it to `waitUntil`: were
   * its client to go away mid-call, the runtime would otherwise cancel the call with the request,
   * and every waiter, and the subject's lease state, would hang on it.
   */
  keepAlive?: (call: Promise<unknown>) => void;
}

/**
 * Spends one leased token if the state holds an unexpired one: the hot path of a warm subject,
 * synchronous and allocation-free (no backend call, no promise). False = lease (`acquireFrom`).
 */
export function spendLeased(s: LeaseState, now: number): boolean {
  if (s.tokens > 0 && now < s.expiresAt) {
    s.tokens -= 1;
    return true;
  }
  return false;
}

/**
 * Gives back one token spent from `s` under counter `window` (a quota's period or generation) while
 * `s` holds a live lease of that counter: the backend counted the token when it granted it, so it
 * may be spent once more — exact, no round trip. Otherwise (the lease expired or was voided by a
 * lowered limit, the counter was reset, or the subject's next lease call is in flight and its grant
 * replaces what is held) the token is lost: under-admission only.
 */
export function returnLeased(s: LeaseState, window: number, now: number): boolean {
  if (s.window !== window || now >= s.expiresAt) return false;
  s.tokens += 1;
  return true;
}

/** Lease state per (backend, subject, spec) in one isolate. Bounded in size (FIFO eviction). */
export class LeaseBook {
  private readonly states = new Map<string, LeaseState>();
  private gen = 0;

  constructor(private readonly maxEntries = 20_000) {}

  /**
   * Changes whenever a state leaves the book (eviction, `forget`). A caller that keeps a
   * `LeaseState` between requests (the limit handler does, per subject) re-fetches it with
   * `stateFor` when this moved, so it never spends from — or remembers a refusal in — a state
   * the book has dropped (e.g. after an admin reset).
   */
  get generation(): number {
    return this.gen;
  }

  /** The state for `id`, created empty (no tokens) on first use. */
  stateFor(id: string, spec: LimitSpec): LeaseState {
    let s = this.states.get(id);
    if (!s) {
      if (this.states.size >= this.maxEntries) {
        // Evicting a state drops its tokens: under-admission only, never over-admission.
        for (const [k, v] of this.states) {
          if (!v.inflight) {
            this.states.delete(k);
            this.gen++;
            break;
          }
        }
      }
      s = {
        tokens: 0,
        expiresAt: 0,
        window: 0,
        returnable: spec.algorithm === "token-bucket" || spec.algorithm === "period",
        backendRemaining: spec.limit,
        measuredAt: 0,
        resetMs: 0,
        retryMs: 0,
        refusedUntil: 0,
        unavailableUntil: 0,
        inflight: undefined,
      };
      this.states.set(id, s);
    }
    return s;
  }

  /** Spends one token for the subject, leasing more from the backend only when none are held. */
  acquire(id: string, spec: LimitSpec, opts: AcquireOptions): Promise<Decision> {
    return this.acquireFrom(this.stateFor(id, spec), opts);
  }

  /** `acquire` on a state already looked up (see `stateFor`, `generation`). */
  async acquireFrom(s: LeaseState, opts: AcquireOptions): Promise<Decision> {
    let roundTrip = false;
    let expiredOnArrival = 0;
    const budget = opts.timeoutMs ?? Infinity;
    const deadline = Date.now() + budget;
    for (;;) {
      const now = Date.now();
      if (s.tokens > 0 && now < s.expiresAt) {
        s.tokens -= 1;
        const elapsed = now - s.measuredAt;
        return { allowed: true, remaining: s.backendRemaining + s.tokens, retryMs: 0, resetMs: Math.max(0, s.resetMs - elapsed), roundTrip };
      }
      if (now < s.refusedUntil) {
        const elapsed = now - s.measuredAt;
        return { allowed: false, remaining: 0, retryMs: Math.max(1, s.retryMs - elapsed), resetMs: Math.max(0, s.resetMs - elapsed), roundTrip };
      }
      if (now >= deadline) throw new LimiterUnavailableError(opts.backend ?? "limiter", "timeout");
      if (now < s.unavailableUntil && !s.inflight) throw new LimiterUnavailableError(opts.backend ?? "limiter", "backing-off");
      let own = false;
      if (!s.inflight) {
        const give = s.returnable && s.tokens > 0 ? s.tokens : 0;
        const giveWindow = s.window;
        s.tokens = 0;
        const sentAt = now;
        roundTrip = own = true;
        s.inflight = opts
          .call(Math.max(1, opts.leaseMax), give, giveWindow)
          .then((r) => {
            s.tokens = r.granted;
            s.window = r.window;
            s.expiresAt = sentAt + r.ttlMs;
            s.backendRemaining = r.remaining;
            s.measuredAt = sentAt;
            s.resetMs = r.resetMs;
            s.retryMs = r.retryMs;
            // Measured from the answer, not the call: every request that waited for this answer is
            // refused by it, even when the call was slow. (Remembering a refusal only under-admits.)
            s.refusedUntil = r.granted === 0 ? Date.now() + Math.max(1, Math.min(r.retryMs || NEGATIVE_TTL_MS, NEGATIVE_TTL_MS)) : 0;
          })
          .catch((err: unknown) => {
            s.unavailableUntil = Date.now() + NEGATIVE_TTL_MS;
            throw err;
          })
          .finally(() => {
            s.inflight = undefined;
          });
        opts.keepAlive?.(s.inflight.catch(() => {}));
      }
      // A failed lease rejects every request waiting on it; each applies its limit's fail mode.
      // A call this request just started ends within the deadline by its own bound; any other wait
      // (another request's call, a call started after waiting) is cut off at the deadline.
      await ((own && now + budget <= deadline) || budget === Infinity ? s.inflight : before(s.inflight, deadline, opts.backend));
      // A grant can expire before it arrives (a window or period ending during a slow call); the
      // next call asks in the new one. Should that keep happening, give up and let the limit's
      // fail mode decide, rather than call the backend for ever.
      if (own && s.tokens > 0 && Date.now() >= s.expiresAt && ++expiredOnArrival >= MAX_EXPIRED_ON_ARRIVAL) {
        throw new Error(`${MAX_EXPIRED_ON_ARRIVAL} leases in a row expired before they arrived`);
      }
    }
  }

  /**
   * The live lease this isolate holds for `id`, if any: its unspent tokens (a quota's returned
   * ones among them), the counter it was granted from and when it was sent (which tells one lease
   * from the next). The backend counts those tokens as used; the admin status takes them off.
   */
  heldLease(id: string, now: number): { tokens: number; window: number; sentAt: number } | undefined {
    const s = this.states.get(id);
    return s !== undefined && s.tokens > 0 && now < s.expiresAt ? { tokens: s.tokens, window: s.window, sentAt: s.measuredAt } : undefined;
  }

  /**
   * Forgets remembered refusals, so a raised limit (an admin override) applies at once in this
   * isolate instead of after the negative cache. Held tokens stay: dropping them only under-admits.
   */
  clearRefusals(): void {
    for (const s of this.states.values()) s.refusedUntil = 0;
  }

  /** Forgets what this isolate holds for ids starting with `prefix` (admin reset, override change). */
  forget(prefix = ""): void {
    for (const [k, s] of this.states) {
      if (k.startsWith(prefix) && !s.inflight) {
        this.states.delete(k);
        this.gen++;
      }
    }
  }
}

/** `p`, or LimiterUnavailableError ("timeout") once `deadline` (ms since epoch) has passed. */
function before<T>(p: Promise<T>, deadline: number, backend = "limiter"): Promise<T> {
  let timer!: ReturnType<typeof setTimeout>;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new LimiterUnavailableError(backend, "timeout")), deadline - Date.now());
    }),
  ]).finally(() => clearTimeout(timer));
}

/** One book per isolate, shared by every request and every limit it serves. */
export const isolateLeaseBook = new LeaseBook();
