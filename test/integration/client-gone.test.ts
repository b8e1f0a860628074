import { createExecutionContext, env, SELF, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { authorize } from "../../plugins/authorize";
import { keyAuth } from "../../plugins/key-auth";
import { rateLimit } from "../../plugins/rate-limit";
import { createApp } from "../../worker/app";
import { defineGateway } from "../../worker/gateway/config";
import { isolateOverrideCache } from "../../worker/limits/overrides";
import { testUpstreams } from "../fixtures/upstreams";
import { originRecords, readToEnd, seedCaller, unique } from "../helpers";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Requests of one isolate share backend calls: a subject's lease from the limiter, a key's D1
 * read, the override snapshot. When the request that started such a call is cancelled (its client
 * went away), the runtime cancels what that request started, unless it was handed to `waitUntil`.
 * Aborting a `SELF.fetch` cancels the request in workerd exactly so. The SlowLimiter Durable
 * Object (test/fixtures/worker.ts) answers leases after 1 s, so the lease is still out when the
 * request that started it is cancelled.
 */
describe("a shared backend call outlives the request that started it", () => {
  it("a lease whose starting request is cancelled still answers the requests waiting on it, and the subject is not stuck", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const auth = { authorization: `Bearer ${key}` };
    const m = unique("gone");
    // The key is resolved and cached first, so the one shared call below is the lease.
    expect((await SELF.fetch(`https://gateway.test/echo/${m}-warm`, { headers: auth })).status).toBe(200);

    // A starts the subject's first lease and is cancelled 300 ms into it.
    const cancel = new AbortController();
    const a = SELF.fetch(`https://gateway.test/rl-slow/${m}-a`, { headers: auth, signal: cancel.signal }).catch((e: Error) => e);
    await sleep(100);
    // B holds no token, so it waits on A's lease.
    const b = SELF.fetch(`https://gateway.test/rl-slow/${m}-b`, { headers: auth });
    await sleep(200);
    cancel.abort();
    expect(String(await a)).toMatch(/abort/i);

    // Without the lease in A's waitUntil, B would wait forever on a call the runtime dropped.
    const res = await Promise.race([b, sleep(5_000).then(() => "hung" as const)]);
    expect(res).not.toBe("hung");
    expect((res as Response).status).toBe(200);
    expect((res as Response).headers.get("ratelimit-limit")).toBe("1000");
    // Later requests of the subject spend tokens of that same lease: no second slow call.
    const startedC = Date.now();
    const c = await Promise.race([SELF.fetch(`https://gateway.test/rl-slow/${m}-c`, { headers: auth }), sleep(5_000).then(() => "hung" as const)]);
    expect(c).not.toBe("hung");
    expect((c as Response).status).toBe(200);
    expect(Date.now() - startedC).toBeLessThan(900);
    // A never reached the origin; B and C did.
    const seen = (await originRecords(m)).map((r) => r.url.split("/").pop());
    expect(seen.sort()).toEqual([`${m}-b`, `${m}-c`, `${m}-warm`].sort());
  });
});

describe("the request that starts a lease call hands it to waitUntil", () => {
  const app = createApp(
    defineGateway({
      upstreams: testUpstreams,
      plugins: [keyAuth(), authorize()],
      routes: [
        { name: "plain", path: "/plain/*", upstream: "echo", permission: "echo:read" },
        { name: "shared", path: "/shared/*", upstream: "echo", permission: "echo:read", plugins: [rateLimit({ name: "shared-calls", limit: 1000, window: "1h", leaseMax: 10 })] },
      ],
    }),
  );
  /** Calls the app and returns how many promises the request handed to waitUntil. */
  async function kept(path: string, key: string): Promise<{ status: number; kept: number }> {
    const ctx = createExecutionContext();
    let n = 0;
    const waitUntil = ctx.waitUntil.bind(ctx);
    ctx.waitUntil = (p) => (n++, waitUntil(p));
    const res = await readToEnd(await app.fetch(new Request(`https://gateway.test${path}`, { headers: { authorization: `Bearer ${key}` } }), env, ctx));
    await waitOnExecutionContext(ctx);
    return { status: res.status, kept: n };
  }

  it("the lease call once; the override snapshot read is the request's own; a warm request hands over nothing", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("shared");
    // The key resolved and its last_used_at recorded (the one waitUntil): none of that below.
    expect(await kept(`/plain/${m}-0`, key)).toEqual({ status: 200, kept: 1 });
    isolateOverrideCache.purge();
    // First request of the subject: reads the override snapshot itself (a miss after the purge:
    // not shared, so nothing to hand over) and starts the lease call, which others may wait on.
    expect(await kept(`/shared/${m}-1`, key)).toEqual({ status: 200, kept: 1 });
    // Warm: snapshot cached, a leased token spent.
    expect(await kept(`/shared/${m}-2`, key)).toEqual({ status: 200, kept: 0 });
  });
});
