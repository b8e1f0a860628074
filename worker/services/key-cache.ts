import { TtlCache } from "../lib/ttl-cache";
import type { ResolvedIdentity } from "./identity";

/**
 * Isolate-local cache of key resolutions, keyed by key hash (never by key): `undefined` = not
 * cached (go to D1), `null` = known to be unknown. A TtlCache like the isolate's other caches, so the
 * FIFO bound, the freshness rule and the purge generation are written once.
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
export class KeyCache extends TtlCache<ResolvedIdentity | null> {}

/** One cache per isolate, shared by every request it serves. */
export const isolateKeyCache = new KeyCache();
