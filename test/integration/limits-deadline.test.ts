import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { quota } from "../../plugins/quota";
import { rateLimit } from "../../plugins/rate-limit";
import { createApp } from "../../worker/app";
import { defineGateway } from "../../worker/gateway/config";
import { testUpstreams } from "../fixtures/upstreams";
import { expectProblem, originRecords, readToEnd, unique } from "../helpers";
import { clearOfHourEdge } from "../window-edges";

/**
 * A limit's `timeoutMs` bounds one request's whole wait on its backend, not only each call.
 *
 * The backends here are up but slow: every lease answers correctly after 1 s — the SlowLimiter
 * Durable Object (test/fixtures/worker.ts, bound as LIMITER_SLOW), and the real Upstash bridge
 * over the local Redis reached through a host whose every call this file delays by 1 s. Each call
 * is inside the limits' timeoutMs of 1.5 s. With `leaseMax: 1`, a burst of four requests from one
 * subject shares the first call; its one token goes to one of them, and the others queue behind a
 * second call, then a third... Without an overall bound the last of them waited ~4 s.
 */
const SLOW_MS = 1_000;
const TIMEOUT_MS = 1_500;
// Response building, the origin round trip and timer slack on a loaded 2-core machine.
const MARGIN_MS = 500;
const BURST = 4;

const SLOWED_UPSTASH = "http://slowed-upstash.test";
const realFetch = globalThis.fetch;
beforeAll(() => {
  // Calls to SLOWED_UPSTASH go to the real bridge, 1 s late (an Upstash in a far region). Nothing
  // else is touched.
  globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    if (!url.startsWith(SLOWED_UPSTASH)) return realFetch(input, init);
    await new Promise((r) => setTimeout(r, SLOW_MS));
    return realFetch(env.UPSTASH_TEST_URL + url.slice(SLOWED_UPSTASH.length), init);
  }) as typeof fetch;
});
afterAll(() => {
  globalThis.fetch = realFetch;
});
beforeEach(() => clearOfHourEdge(20_000), 30_000);

const backends = {
  "durable-object": { durableObjectBinding: "LIMITER_SLOW" },
  upstash: { backend: "upstash", upstash: { urlFromEnv: "UPSTASH_SLOWED_URL", tokenFromEnv: "UPSTASH_TEST_TOKEN", prefix: "pctest" } },
  // The same Redis without the delay: loads the lease script, so the slowed calls are one round trip each.
  "upstash-fast": { backend: "upstash", upstash: { urlFromEnv: "UPSTASH_TEST_URL", tokenFromEnv: "UPSTASH_TEST_TOKEN", prefix: "pctest" } },
} as const;
type BackendName = keyof typeof backends;

function gatewayFor(backend: BackendName) {
  const common = { limit: 1000, by: ["ip"] as "ip"[], timeoutMs: TIMEOUT_MS, leaseMax: 1, ...backends[backend] };
  const app = createApp(
    defineGateway({
      upstreams: testUpstreams,
      plugins: [],
      routes: [
        { name: "q", path: "/q/*", upstream: "echo", plugins: [quota({ name: unique("dl-q"), ...common })] },
        { name: "rl", path: "/rl/*", upstream: "echo", plugins: [rateLimit({ name: unique("dl-rl"), window: "1h", ...common })] },
      ],
    }),
  );
  const bindings = { ...env, UPSTASH_SLOWED_URL: SLOWED_UPSTASH };
  /** One request, timed until its response is read (not until its waitUntil work ends). */
  return async (path: string, ip: string) => {
    const ctx = createExecutionContext();
    const started = Date.now();
    const res = await readToEnd(await app.fetch(new Request(`https://gateway.test${path}`, { headers: { "cf-connecting-ip": ip } }), bindings, ctx));
    return { res, elapsed: Date.now() - started, done: waitOnExecutionContext(ctx) };
  };
}

/** A burst of BURST concurrent requests from one new client IP; waits for their background work too. */
async function burst(backend: BackendName, route: "q" | "rl") {
  const call = gatewayFor(backend);
  if (backend === "upstash") await (await gatewayFor("upstash-fast")(`/${route}/prime`, "198.51.100.1")).done;
  const ip = `10.${(Math.random() * 250) | 0}.${(Math.random() * 250) | 0}.${(Math.random() * 250) | 0}`;
  const marker = unique(`deadline-${route}`);
  const results = await Promise.all(Array.from({ length: BURST }, (_, i) => call(`/${route}/${marker}/${i}`, ip)));
  await Promise.all(results.map((r) => r.done));
  return { results, forwarded: (await originRecords(marker)).length };
}

describe.each(["durable-object", "upstash"] as const)("a slow backend (%s): one request waits at most timeoutMs in all", (backend) => {
  it("fail-closed quota: requests queued behind a call answer 503 LIMITER_UNAVAILABLE within timeoutMs, and are not forwarded", async () => {
    const { results, forwarded } = await burst(backend, "q");
    expect(Math.max(...results.map((r) => r.elapsed))).toBeLessThanOrEqual(TIMEOUT_MS + MARGIN_MS);
    const admitted = results.filter((r) => r.res.status === 200);
    const refused = results.filter((r) => r.res.status !== 200);
    // The first call's one token admits one request; the queued others reach their deadline.
    expect(admitted.length).toBeLessThanOrEqual(1);
    expect(refused.length).toBeGreaterThanOrEqual(BURST - 1);
    for (const { res } of refused) {
      const body = await expectProblem(res, 503, "LIMITER_UNAVAILABLE");
      expect(res.headers.get("retry-after")).toBe("1");
      expect(body.detail).toContain("quota");
    }
    // Those waited at least the 1 s of the shared call: they queued behind it, then timed out.
    for (const { elapsed } of refused) expect(elapsed).toBeGreaterThanOrEqual(SLOW_MS);
    expect(forwarded).toBe(admitted.length);
  });

  it("fail-open rate limit: requests queued behind a call are admitted within timeoutMs, without a guessed RateLimit-Remaining", async () => {
    const { results, forwarded } = await burst(backend, "rl");
    expect(Math.max(...results.map((r) => r.elapsed))).toBeLessThanOrEqual(TIMEOUT_MS + MARGIN_MS);
    for (const { res } of results) expect(res.status).toBe(200);
    expect(forwarded).toBe(BURST);
    // At most the one holder of the first call's token knows what is left; the rest failed open.
    const failedOpen = results.filter((r) => r.res.headers.get("ratelimit-remaining") === null);
    expect(failedOpen.length).toBeGreaterThanOrEqual(BURST - 1);
    for (const { res } of failedOpen) expect(res.headers.get("ratelimit-limit")).toBe("1000");
  });
});
