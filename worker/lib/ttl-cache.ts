interface Entry<T> {
  value: T;
  freshUntil: number;
}

const purgeable = new Set<{ purge(): void }>();

/**
 * A small isolate-local cache with per-entry freshness and a FIFO bound on size. Every instance
 * is purged by `purgeIsolateCaches()`, which admin mutations call, so the isolate that served an
 * admin change never serves the old state; other isolates see it within their entries' TTL.
 *
 * A read that was out when the cache was purged may hold the state from before the change: take
 * `generation` before the read and pass it to `set`, which then drops the value.
 */
export class TtlCache<T> {
  private readonly entries = new Map<string, Entry<T>>();
  /** Bumped by every purge. */
  generation = 0;

  constructor(private readonly maxEntries = 10_000) {
    purgeable.add(this);
  }

  /** `undefined` = not cached (or stale). */
  get(key: string, now = Date.now()): T | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.freshUntil <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  /** Caches `value`, unless a purge happened since `readAt` (the `generation` taken before the read). */
  set(key: string, value: T, ttlMs: number, now = Date.now(), readAt = this.generation): void {
    if (ttlMs <= 0 || readAt !== this.generation) return;
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.delete(key);
    this.entries.set(key, { value, freshUntil: now + ttlMs });
  }

  purge(): void {
    this.entries.clear();
    this.generation++;
  }
}

/**
 * Has `cache` purged with every TtlCache by `purgeIsolateCaches()`: for an isolate-wide cache of
 * another shape whose entries an admin change can make wrong (the limit override snapshot, keyed
 * by role names a rename changes).
 */
export function purgedWithIsolateCaches<C extends { purge(): void }>(cache: C): C {
  purgeable.add(cache);
  return cache;
}

/** Drops every TtlCache of this isolate (called after each admin mutation). */
export function purgeIsolateCaches(): void {
  for (const c of purgeable) c.purge();
}
