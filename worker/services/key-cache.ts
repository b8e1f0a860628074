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
 */
export class KeyCache {
  private readonly entries = new Map<string, Entry>();

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

  /** Drops everything; admin mutations call this so their own isolate never serves stale state. */
  purge(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}

/** One cache per isolate, shared by every request it serves. */
export const isolateKeyCache = new KeyCache();
