import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startUpstashBridge } from "../../scripts/upstash-bridge.mjs";
import { clearOfHourEdge } from "../window-edges";

/** The bridge speaks what the real Upstash REST API speaks, as far as @upstash/redis and @upstash/ratelimit can tell. */
describe("Upstash bridge", () => {
  let bridge: Awaited<ReturnType<typeof startUpstashBridge>>;
  let redis: Redis;
  const p = `bridge-test:${Date.now().toString(36)}:`;

  beforeAll(async () => {
    bridge = await startUpstashBridge({ token: "bridge-test-token", redisUrl: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" });
    redis = new Redis({ url: bridge.url, token: "bridge-test-token", retry: false, enableTelemetry: false });
  });
  afterAll(async () => {
    await redis.del(`${p}s`, `${p}h`, `${p}c`);
    await bridge.close();
  });

  it("round-trips values that look like base64, hashes (flattened), pipelines and transactions", async () => {
    await redis.set(`${p}s`, "aGVsbG8=");
    expect(await redis.get(`${p}s`)).toBe("aGVsbG8=");
    await redis.hset(`${p}h`, { a: "x", b: "two words" });
    expect(await redis.hgetall(`${p}h`)).toEqual({ a: "x", b: "two words" });
    const pipe = redis.pipeline();
    pipe.incr(`${p}c`);
    pipe.incrby(`${p}c`, 4);
    expect(await pipe.exec()).toEqual([1, 5]);
    const tx = redis.multi();
    tx.incr(`${p}c`);
    tx.get(`${p}c`);
    expect(await tx.exec()).toEqual([6, 6]);
  });

  it("refuses a wrong token and passes Redis errors through", async () => {
    const wrong = new Redis({ url: bridge.url, token: "nope", retry: false, enableTelemetry: false });
    await expect(wrong.get("x")).rejects.toThrow(/Unauthorized/);
    await expect(redis.evalsha("0".repeat(40), [], [])).rejects.toThrow(/NOSCRIPT/);
  });

  describe("@upstash/ratelimit", () => {
    // Counting: hour windows and refills (the library's sliding windows are epoch-aligned, like
    // ours), and the test never starts near an hour edge (test/window-edges.ts).
    beforeEach(() => clearOfHourEdge(30_000), 40_000);

    it("runs @upstash/ratelimit's `#!lua flags=` scripts (EVALSHA of the original sha finds the rewritten script)", async () => {
      const limiter = new Ratelimit({ redis, limiter: Ratelimit.slidingWindow(3, "1 h"), prefix: `${p}rl`, analytics: false });
      const results = [];
      for (let i = 0; i < 5; i++) results.push((await limiter.limit("u")).success);
      expect(results).toEqual([true, true, true, false, false]);
      const bucket = new Ratelimit({ redis, limiter: Ratelimit.tokenBucket(1, "1 h", 2), prefix: `${p}tb`, analytics: false });
      expect([(await bucket.limit("u")).success, (await bucket.limit("u")).success, (await bucket.limit("u")).success]).toEqual([true, true, false]);
    }, 30_000);
  });
});
