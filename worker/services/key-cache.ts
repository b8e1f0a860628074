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
 * so a key whose `expiresAt` passes is refused on time even while cached.
 *
 * Misses are single-flight (`resolve`): requests that miss the same key together share one D1
 * read, so a burst from one caller into a fresh isolate costs one query, not one per request. A
 * read that was in flight when the cache was purged answers the requests that were waiting on it
 * (they arrived before the change) but is not cached: it may predate the change.
 */
export class KeyCache {
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<ResolvedIdentity | null>>();
  /** Bumped by `purge`: a read started under an older generation must not fill the cache. */
  private generation = 0;

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

  set(hash: string, identity: ResolvedIdentity | null, ttlMs: number, now: number): void {
    if (ttlMs <= 0) return;
    // Map keeps insertion order, so the first key is the oldest: a cheap FIFO bound on memory.
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.delete(hash);
    this.entries.set(hash, { identity, freshUntil: now + ttlMs });
  }

  /**
   * The resolution of `hash` after `get` missed: the read already in flight for it, or a new read
   * by `load` (cached for `ttlMs(identity)` from `now`). A failed read is shared by its waiters and
   * not cached, so the next request reads again. `keepAlive` gets the new read (settled, never
   * rejecting): the request that started it hands it to `waitUntil`, so the read completes, and
   * its waiters get their answer, even when that request's own client goes away.
   */
  resolve(
    hash: string,
    now: number,
    load: () => Promise<ResolvedIdentity | null>,
    ttlMs: (identity: ResolvedIdentity | null) => number,
    keepAlive?: (read: Promise<unknown>) => void,
  ): Promise<ResolvedIdentity | null> {
    let read = this.loading.get(hash);
    if (read) return read;
    const generation = this.generation;
    this.loading.set(hash, (read = load()));
    const settle = (identity?: ResolvedIdentity | null) => {
      if (this.loading.get(hash) === read) this.loading.delete(hash);
      if (identity !== undefined && generation === this.generation) this.set(hash, identity, ttlMs(identity), now);
    };
    const done = read.then(settle, () => settle());
    keepAlive?.(done);
    return read;
  }

  /** Drops everything; admin mutations call this so their own isolate never serves stale state. */
  purge(): void {
    this.entries.clear();
    this.loading.clear();
    this.generation++;
  }
}

/** One cache per isolate, shared by every request it serves. */
export const isolateKeyCache = new KeyCache();
