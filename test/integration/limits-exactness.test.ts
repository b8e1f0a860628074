// Rate limits: exactness under concurrency and token leasing, on both backends.
import { beforeEach, describe, expect, it } from "vitest";
import { env } from "cloudflare:test";
import { durableObjectBackend } from "../../worker/limits/durable-object";
import { upstashBackend } from "../../worker/limits/upstash";
import { admin, gw, json, originRecords, seedCaller, unique } from "../helpers";
import { clearOfHourEdge } from "../window-edges";

const auth = (key: string, extra: Record<string, string> = {}) => ({ headers: { authorization: `Bearer ${key}`, ...extra } });

/**
 * Fires `count` requests at once; returns the responses (bodies read) in order. The key is
 * resolved once first, so the burst measures the limiter, not concurrent cold key lookups in D1.
 */
async function burst(path: (i: number) => string, key: string, count: number) {
  await (await gw(`/echo/${unique("warm")}`, auth(key))).text();
  const responses = await Promise.all(Array.from({ length: count }, (_, i) => gw(path(i), auth(key))));
  return Promise.all(responses.map(async (res) => ({ res, body: await res.text() })));
}

async function status(userId: string) {
  const res = await admin("GET", `/users/${userId}/limits/status`);
  expect(res.status).toBe(200);
  return (await json(res)).limits as Array<{ name: string; route: string | null; used: number; remaining: number; limit: number; source: string; backend: string }>;
}

describe("counting by group", () => {
  // Counting against 1 h windows: never across an hour edge (test/window-edges.ts).
  beforeEach(() => clearOfHourEdge(60_000), 70_000);

  it("users of one group share the counter; a user without a group counts alone", async () => {
    // `shared-up`: 20 per hour, by: ["group"] (Upstash backend, leases of up to 5).
    const group = unique("grp");
    const [c, d] = [await seedCaller({ permissions: ["echo:read"], group }), await seedCaller({ permissions: ["echo:read"], group })];
    const marker = unique("by-group");
    const first = await burst((i) => `/shared-up/${marker}/c${i}`, c.key, 21);
    expect(first.filter((r) => r.res.status === 200).length).toBe(20);
    // The group's 20 are spent: the other member is refused, and nothing of it reaches the origin.
    const other = await gw(`/shared-up/${marker}/d`, auth(d.key));
    expect(other.status).toBe(429);
    expect((await json(other)).code).toBe("RATE_LIMITED");

    // Two users with no group: each has its own 20.
    const [a, b] = [await seedCaller({ permissions: ["echo:read"] }), await seedCaller({ permissions: ["echo:read"] })];
    const lone = await burst((i) => `/shared-up/${marker}/a${i}`, a.key, 21);
    expect(lone.filter((r) => r.res.status === 200).length).toBe(20);
    expect(lone.filter((r) => r.res.status === 429).length).toBe(1);
    expect((await gw(`/shared-up/${marker}/b`, auth(b.key))).status).toBe(200);
    expect((await originRecords(marker)).length).toBe(20 + 20 + 1);
  });
});

describe("exactness under concurrency", () => {
  // Counting against 1 h windows: never across an hour edge (test/window-edges.ts).
  beforeEach(() => clearOfHourEdge(60_000), 70_000);
  it.each([
    ["rl-do", 20, "durable-object"],
    ["rl-up", 20, "upstash"],
    ["rl-do-lease", 20, "durable-object"],
    ["rl-up-lease", 20, "upstash"],
  ])("%s: of 4N concurrent requests from one user exactly N reach the origin, 3N get 429", async (route, n, backend) => {
    const { key, user } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique(route);
    const results = await burst((i) => `/${route}/${marker}/${i}`, key, 4 * n);
    const ok = results.filter((r) => r.res.status === 200);
    const refused = results.filter((r) => r.res.status === 429);
    expect(ok.length).toBe(n);
    expect(refused.length).toBe(3 * n);
    expect((await originRecords(marker)).length).toBe(n);
    const problem = JSON.parse(refused[0]!.body);
    expect(problem.code).toBe("RATE_LIMITED");
    expect(refused[0]!.res.headers.get("content-type")).toBe("application/problem+json");
    expect(Number(refused[0]!.res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(refused[0]!.res.headers.get("ratelimit-remaining")).toBe("0");
    const [s] = (await status(user.id)).filter((l) => l.name === route);
    expect(s).toMatchObject({ backend, limit: n, used: n, remaining: 0 });
  }, 60_000);
});

describe("leasing", () => {
  beforeEach(() => clearOfHourEdge(20_000), 30_000);
  it.each(["rl-do-lease", "rl-up-lease"])("%s: a warm subject spends leased tokens without a backend call per request", async (route) => {
    const { key, user } = await seedCaller({ permissions: ["echo:read"] });
    const first = await gw(`/${route}/${unique("lease")}`, auth(key));
    expect(first.status).toBe(200);
    await first.text();
    // One lease of 5 (20 available, a quarter is 5): the backend counted 5 for 1 request.
    // Read from the backend itself: the admin status takes off the tokens this isolate holds unspent.
    const backend = route === "rl-do-lease" ? durableObjectBackend(env.LIMITER as never) : upstashBackend({ url: env.UPSTASH_TEST_URL, token: env.UPSTASH_TEST_TOKEN, prefix: "pctest", timeoutMs: 1_000 });
    const counted = async () => (await backend.usage(`${route}|u:${user.id}`, { algorithm: "sliding-window", limit: 20, windowMs: 3_600_000 })).used;
    const used = async () => (await status(user.id)).find((l) => l.name === route)!.used;
    expect([await counted(), await used()]).toEqual([5, 1]);
    for (let i = 0; i < 4; i++) {
      const res = await gw(`/${route}/${unique("lease")}`, auth(key));
      expect(res.status).toBe(200);
      await res.text();
    }
    // Four more requests, no new lease: they were served from the tokens this isolate holds.
    expect([await counted(), await used()]).toEqual([5, 5]);
    // The sixth needs a new lease (15 left, a quarter is 3, capped at leaseMax 5 → 3).
    await (await gw(`/${route}/${unique("lease")}`, auth(key))).text();
    expect([await counted(), await used()]).toEqual([8, 6]);
  });
});

