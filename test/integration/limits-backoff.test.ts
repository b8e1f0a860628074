import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { quota } from "../../plugins/quota";
import { rateLimit } from "../../plugins/rate-limit";
import { createApp } from "../../worker/app";
import { defineGateway } from "../../worker/gateway/config";
import { NEGATIVE_TTL_MS } from "../../worker/limits/lease-book";
import { testUpstreams } from "../fixtures/upstreams";
import { expectProblem, readToEnd, unique } from "../helpers";

/**
 * A failed or timed-out backend call is remembered per subject for NEGATIVE_TTL_MS, like a
 * refusal. Before, while a backend stalled, every request of a subject waited out the limit's
 * whole timeoutMs in turn before its fail mode applied (a 400 ms stall on each of them, here), and
 * each asked the stalled backend again.
 */
const TIMEOUT_MS = 400;
const backends = {
  "Durable Object that never answers": { durableObjectBinding: "LIMITER_STALLED" },
  "Upstash that never answers": { backend: "upstash", upstash: { urlFromEnv: "UPSTASH_STALL_URL", tokenFromEnv: "UPSTASH_TEST_TOKEN", prefix: "pctest" } },
  "Upstash that refuses connections": { backend: "upstash", upstash: { urlFromEnv: "UPSTASH_DOWN_URL", tokenFromEnv: "UPSTASH_TEST_TOKEN", prefix: "pctest" } },
} as const;

let logged: string[] = [];
beforeEach(() => {
  logged = [];
  vi.spyOn(console, "error").mockImplementation((line: unknown) => void logged.push(String(line)));
});
afterEach(() => vi.restoreAllMocks());

/** The `reason` of each "limiter unavailable" line logged since the last call. */
function reasons(): string[] {
  const out = logged.filter((l) => l.includes('"limiter unavailable"')).map((l) => JSON.parse(l).reason as string);
  logged = [];
  return out;
}

describe.each(Object.entries(backends))("%s", (_name, backend) => {
  const common = { by: ["ip"] as "ip"[], limit: 50, timeoutMs: TIMEOUT_MS, ...backend };
  const app = createApp(
    defineGateway({
      upstreams: testUpstreams,
      plugins: [],
      routes: [
        { name: "open", path: "/open/*", upstream: "echo", plugins: [rateLimit({ name: unique("bo-rl"), window: "1h", ...common })] },
        { name: "closed", path: "/closed/*", upstream: "echo", plugins: [quota({ name: unique("bo-q"), period: "day", ...common })] },
      ],
    }),
  );
  const call = async (path: string, ip: string) => {
    const ctx = createExecutionContext();
    const started = Date.now();
    const res = await readToEnd(await app.fetch(new Request(`https://gateway.test${path}`, { headers: { "cf-connecting-ip": ip } }), env, ctx));
    const elapsed = Date.now() - started;
    await waitOnExecutionContext(ctx);
    return { res, elapsed };
  };
  const newIp = () => `10.${(Math.random() * 250) | 0}.${(Math.random() * 250) | 0}.${(Math.random() * 250) | 0}`;

  it("after a failed call, the subject's next requests get the fail mode at once without asking the backend; after NEGATIVE_TTL_MS it is asked again", async () => {
    const ip = newIp();
    const first = await call(`/open/${unique("bo")}`, ip);
    expect(first.res.status).toBe(200);
    const [firstReason] = reasons();
    expect(["timeout", "error"]).toContain(firstReason);

    for (let i = 0; i < 3; i++) {
      const next = await call(`/open/${unique("bo")}`, ip);
      expect(next.res.status).toBe(200); // fail open, as declared
      expect(reasons()).toEqual(["backing-off"]);
      // Not another wait for the backend (a stalled one would hold each request TIMEOUT_MS).
      expect(next.elapsed).toBeLessThan(TIMEOUT_MS);
    }

    // Another subject is asked as usual: one subject's failures do not decide for the others.
    await call(`/open/${unique("bo")}`, newIp());
    expect(reasons()).toEqual([firstReason]);

    await new Promise((r) => setTimeout(r, NEGATIVE_TTL_MS + 100));
    await call(`/open/${unique("bo")}`, ip);
    expect(reasons()).toEqual([firstReason]);
  });

  it("a fail-closed quota answers its 503 at once while backing off, with Retry-After 1", async () => {
    const ip = newIp();
    await expectProblem((await call(`/closed/${unique("bo")}`, ip)).res, 503, "LIMITER_UNAVAILABLE");
    expect(reasons()).toHaveLength(1);
    const next = await call(`/closed/${unique("bo")}`, ip);
    await expectProblem(next.res, 503, "LIMITER_UNAVAILABLE");
    expect(next.res.headers.get("retry-after")).toBe("1");
    expect(reasons()).toEqual(["backing-off"]);
    expect(next.elapsed).toBeLessThan(TIMEOUT_MS);
  });
});
