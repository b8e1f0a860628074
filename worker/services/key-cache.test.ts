import { describe, expect, it } from "vitest";
import type { ResolvedIdentity } from "./identity";
import { KeyCache } from "./key-cache";

const identity = (id: string) => ({ authMethod: "api-key", user: { id }, key: { id: `key_${id}` } }) as unknown as ResolvedIdentity;

describe("KeyCache", () => {
  it("answers from the cache for the TTL, then misses", () => {
    const cache = new KeyCache();
    cache.set("h", identity("u1"), 1_000, 10_000);
    expect(cache.get("h", 10_999)?.user.id).toBe("u1");
    expect(cache.get("h", 11_000)).toBeUndefined();
    cache.set("unknown", null, 500, 10_000);
    expect(cache.get("unknown", 10_100)).toBeNull();
  });

  it("a read that a purge overtook is not cached: it may hold the state from before the change", () => {
    const cache = new KeyCache();
    const readAt = cache.generation; // a request misses and reads D1…
    cache.purge(); // …an admin change (say, a revocation) lands and purges while the read is out…
    cache.set("h", identity("before-the-revocation"), 1_000, 10_000, readAt); // …and the read comes back
    expect(cache.get("h", 10_001)).toBeUndefined();
    // A read taken after the purge is cached as usual.
    cache.set("h", identity("after"), 1_000, 10_000, cache.generation);
    expect(cache.get("h", 10_001)?.user.id).toBe("after");
  });

  it("is bounded: the oldest entry goes first", () => {
    const cache = new KeyCache(2);
    cache.set("a", identity("a"), 1_000, 0);
    cache.set("b", identity("b"), 1_000, 0);
    cache.set("c", identity("c"), 1_000, 0);
    expect(cache.get("a", 1)).toBeUndefined();
    expect(cache.get("b", 1)?.user.id).toBe("b");
    expect(cache.get("c", 1)?.user.id).toBe("c");
  });
});
