import type { ResolvedIdentity } from "./identity";

interface Entry {
  identity: ResolvedIdentity | null;
  freshUntil: number;
}

/**
 * Isolate-local cache of key resolutions, keyed by key hash (never by key).
 *
 * Guarantee: a change made through the admin API is visible at once in the isolate that served
 * the call (it purges this cache) and in every other isolate within `ttlMs` (positive entries)
 * or `negativeTtlMs` (unknown keys). Expiry and revocation timestamps travel inside the entry,
 * so a key whose `expiresAt` passes is refused on time even while cached. A read that was out
 * when the cache was purged is not cached (`generation`): it may predate the change.
 *
 * Misses are deliberately not single-flight. Sharing one D1 read among the requests that miss a
 * key together made workerd cancel some of the waiting requests' own later D1 calls ("canceled
 * this request because it detected that your Worker's code had hung"): 2–6 of ~550 requests of
 * the benchmark's cold scenario failed in every smoke run (docs/design.md, "Key cache guarantee").
 * Each request reads for itself; only the answer is shared, through this cache.
 */
export class KeyCache {
  private readonly entries = new Map<string, Entry>();
  /** Bumped by `purge`; a read taken before it must not fill the cache. */
  generation = 0;

  constructor(private readonly maxEntries = 10_000) {}

  /** `undefined` = not cached (go to D1); `null` = known to be unknown. */
  get(hash: string, now: number): ResolvedIdentity | null | undefined {
    const e = this.entries.get(hash);
    if (!e) return undefined;
    if (e.freshUntil <= now) {
      this.entries.delete(hash);
      return undefined;
    }
    return e.identity;
  }

  /** Caches a read's answer, unless a purge happened since `readAt` (the `generation` taken before the read). */
  set(hash: string, identity: ResolvedIdentity | null, ttlMs: number, now: number, readAt = this.generation): void {
    if (ttlMs <= 0 || readAt !== this.generation) return;
    // Map keeps insertion order, so the first key is the oldest: a cheap FIFO bound on memory.
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.delete(hash);
    this.entries.set(hash, { identity, freshUntil: now + ttlMs });
  }

  /** Drops everything; admin mutations call this so their own isolate never serves stale state. */
  purge(): void {
    this.entries.clear();
    this.generation++;
  }
}

/** One cache per isolate, shared by every request it serves. */
export const isolateKeyCache = new KeyCache();
