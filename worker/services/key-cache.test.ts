import { describe, expect, it } from "vitest";
import type { ResolvedIdentity } from "./identity";
import { KeyCache } from "./key-cache";

const identity = (id: string) => ({ authMethod: "api-key", user: { id }, key: { id: `key_${id}` } }) as unknown as ResolvedIdentity;

/** A load the test settles by hand, counting how often the cache started one. */
function controlledLoad() {
  const calls: Array<{ resolve: (v: ResolvedIdentity | null) => void; reject: (e: unknown) => void }> = [];
  const load = () => new Promise<ResolvedIdentity | null>((resolve, reject) => void calls.push({ resolve, reject }));
  return { load, calls };
}

const ttl = () => 60_000;

describe("KeyCache.resolve (single-flight misses)", () => {
  it("concurrent misses of one key share one load, and the answer is cached", async () => {
    const cache = new KeyCache();
    const { load, calls } = controlledLoad();
    const waiting = Array.from({ length: 10 }, () => cache.resolve("h1", 1_000, load, ttl));
    expect(calls).toHaveLength(1);
    calls[0]!.resolve(identity("u1"));
    const answers = await Promise.all(waiting);
    expect(new Set(answers).size).toBe(1);
    expect(answers[0]!.user.id).toBe("u1");
    expect(cache.get("h1", 2_000)?.user.id).toBe("u1");
    // Another key is its own load.
    void cache.resolve("h2", 1_000, load, ttl);
    expect(calls).toHaveLength(2);
  });

  it("a load in flight when the cache is purged answers its waiters but is not cached", async () => {
    const cache = new KeyCache();
    const { load, calls } = controlledLoad();
    const before = cache.resolve("h", 1_000, load, ttl);
    cache.purge(); // an admin change (say, a revocation) lands while the read is out
    const after = cache.resolve("h", 1_000, load, ttl);
    expect(calls).toHaveLength(2); // requests after the change do not join the older read
    calls[0]!.resolve(identity("stale"));
    expect((await before)!.user.id).toBe("stale");
    expect(cache.get("h", 1_001)).toBeUndefined();
    calls[1]!.resolve(null);
    expect(await after).toBeNull();
    expect(cache.get("h", 1_001)).toBeNull(); // the fresh read is cached (negative)
  });

  it("a failed load rejects every waiter, is not cached, and the next miss loads again", async () => {
    const cache = new KeyCache();
    const { load, calls } = controlledLoad();
    const a = cache.resolve("h", 1_000, load, ttl);
    const b = cache.resolve("h", 1_000, load, ttl);
    calls[0]!.reject(new Error("D1 down"));
    await expect(a).rejects.toThrow("D1 down");
    await expect(b).rejects.toThrow("D1 down");
    expect(cache.get("h", 1_000)).toBeUndefined();
    void cache.resolve("h", 1_000, load, ttl);
    expect(calls).toHaveLength(2);
  });

  it("hands the new load to keepAlive once, not the joiners'", async () => {
    const cache = new KeyCache();
    const { load, calls } = controlledLoad();
    const kept: Promise<unknown>[] = [];
    const keepAlive = (p: Promise<unknown>) => void kept.push(p);
    const a = cache.resolve("h", 1_000, load, ttl, keepAlive);
    const b = cache.resolve("h", 1_000, load, ttl, keepAlive);
    expect(kept).toHaveLength(1);
    calls[0]!.resolve(identity("u"));
    await Promise.all([a, b, ...kept]);
    // The kept promise settles only after the cache is filled.
    expect(cache.get("h", 1_000)?.user.id).toBe("u");
  });
});
