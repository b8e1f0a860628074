// Limits at their edges: overrides that change or are malformed, slow D1 reads near a window's
// end, and lease calls whose grant expires before it arrives. Each test here failed before its fix.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { authorize } from "../../plugins/authorize";
import { keyAuth } from "../../plugins/key-auth";
import { rateLimit } from "../../plugins/rate-limit";
import { LeaseBook } from "../../worker/limits/lease-book";
import type { LeaseReply, LimitSpec } from "../../worker/limits/types";
import { admin, expectProblem, gw, json, originRecords, seedCaller, testGateway, unique } from "../helpers";
import { clearOfHourEdge, startOfFreshWindow } from "../window-edges";

const auth = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe("overrides", () => {
  beforeEach(() => clearOfHourEdge(20_000), 30_000);

  it("lowering a user's limit voids the tokens this isolate already leased under the higher one", async () => {
    const c = await seedCaller({ permissions: ["echo:read"] });
    expect((await admin("PUT", `/users/${c.user.id}/limits`, { limits: { api: { limit: 400 } } })).status).toBe(200);
    // Leases 20 (limit/20) and spends one.
    expect((await gw(`/rl-override/${unique("a")}`, auth(c.key))).status).toBe(200);
    expect((await admin("PUT", `/users/${c.user.id}/limits`, { limits: { api: { limit: 0 } } })).status).toBe(200);
    const marker = unique("blocked");
    for (let i = 0; i < 5; i++) {
      const res = await gw(`/rl-override/${marker}/${i}`, auth(c.key));
      await expectProblem(res, 429, "RATE_LIMITED");
      expect(res.headers.get("ratelimit-limit")).toBe("0");
    }
    expect(await originRecords(marker)).toHaveLength(0);
  });

  it("an override row D1 holds as text (written by hand) is ignored: the configured limit applies, nothing hangs", async () => {
    const c = await seedCaller({ permissions: ["echo:read"] });
    // D1 does not enforce the column's type: "1,000" is stored as text.
    await env.DB.prepare("INSERT INTO user_limits (user_id, limit_name, `limit`, created_at, updated_at) VALUES (?, 'api', '1,000', 0, 0)").bind(c.user.id).run();
    // Any override change purges this isolate's override snapshot, so the row is read now.
    const other = await seedCaller();
    expect((await admin("DELETE", `/users/${other.user.id}/limits`)).status).toBeLessThan(300);
    const res = await Promise.race([gw(`/rl-override/${unique("nan")}`, auth(c.key)), sleep(5_000).then(() => undefined)]);
    expect(res, "the request never answered").toBeDefined();
    expect(res!.status).toBe(200);
    expect(res!.headers.get("ratelimit-limit")).toBe("3"); // the route's configured limit
    expect(res!.headers.get("ratelimit-remaining")).toBe("2");
    await res!.text();
    const status = (await json(await admin("GET", `/users/${c.user.id}/limits/status`))).limits.find((l: { name: string }) => l.name === "api");
    expect(status).toMatchObject({ limit: 3, source: "config", used: 1 });
  });
});

/** env.DB, except that a batch reading user_limits (the override snapshot) takes `delayMs`. */
function slowOverridesDb(delayMs: number): D1Database {
  const real = env.DB;
  const sqlOf = new WeakMap<object, string>();
  const inner = new WeakMap<object, D1PreparedStatement>();
  const wrap = (st: D1PreparedStatement, sql: string): D1PreparedStatement => {
    const proxy = new Proxy(st, {
      get: (t, k) => (k === "bind" ? (...a: unknown[]) => wrap(t.bind(...a), sql) : typeof (t as any)[k] === "function" ? (t as any)[k].bind(t) : (t as any)[k]),
    });
    sqlOf.set(proxy, sql);
    inner.set(proxy, st);
    return proxy;
  };
  return {
    prepare: (sql: string) => wrap(real.prepare(sql), sql),
    async batch(statements: D1PreparedStatement[]) {
      if (statements.some((s) => (sqlOf.get(s) ?? "").includes("user_limits"))) await sleep(delayMs);
      return real.batch(statements.map((s) => inner.get(s) ?? s));
    },
    exec: (q: string) => real.exec(q),
  } as unknown as D1Database;
}

describe("a slow D1 read near a window's end", () => {
  it("a request that waited past its window does not spend a token leased in it (fixed window, 40 per 2 s)", async () => {
    const c = await seedCaller({ permissions: ["echo:read"] });
    const call = testGateway(
      {
        plugins: [keyAuth(), authorize()],
        routes: [{ name: "edge", path: "/edge/*", upstream: "echo", permission: "echo:read", plugins: [rateLimit({ name: unique("edge"), algorithm: "fixed-window", limit: 40, window: "2s", leaseMax: 10 })] }],
      },
      // The override snapshot lives 1 s (KEY_CACHE_TTL_SECONDS in tests): re-read late in the window.
      { DB: slowOverridesDb(600) },
    );
    const end = await startOfFreshWindow(2000); // when window W ends
    expect((await call("/edge/first", auth(c.key))).status).toBe(200); // leases 10 in window W
    await sleep(end - 300 - Date.now());
    // Nine requests start in W, wait ~600 ms on D1, and are decided after W ended.
    const late = await Promise.all(Array.from({ length: 9 }, (_, i) => call(`/edge/late${i}`, auth(c.key)).then((r) => ({ status: r.status, at: Date.now() }))));
    expect(Date.now()).toBeGreaterThan(end);
    // Window W+1: a burst of 45 against its limit of 40.
    const next = await Promise.all(Array.from({ length: 45 }, (_, i) => call(`/edge/next${i}`, auth(c.key)).then((r) => ({ status: r.status, at: Date.now() }))));
    // Admitted in W+1: answered after W ended and before W+1 ended (on a loaded machine the burst
    // may run past W+1; those answers are left out, which can only lower the count).
    const inNextWindow = (l: { status: number; at: number }) => l.status === 200 && l.at > end && l.at < end + 2000;
    expect(late.filter(inNextWindow).length + next.filter(inNextWindow).length).toBeLessThanOrEqual(40);
  }, 20_000);
});

describe("a grant that expires before it arrives", () => {
  it("is asked for again, a bounded number of times, then fails (the limit's fail mode decides)", async () => {
    const spec: LimitSpec = { algorithm: "period", limit: 1000, windowMs: 60_000, periodStart: Date.now() - 60_000, periodEnd: Date.now() + 60_000 };
    let calls = 0;
    // A backend whose grants live 1 ms and whose answers take 5 ms: each lease is dead on arrival.
    const call = async (): Promise<LeaseReply> => {
      calls++;
      if (calls > 50) throw new Error("still calling after 50 lease calls");
      await sleep(5);
      return { granted: 10, remaining: 900, retryMs: 0, resetMs: 1, ttlMs: 1, window: 1 };
    };
    await expect(new LeaseBook().acquire("s", spec, { leaseMax: 10, call })).rejects.toThrow(/expired before they arrived/);
    expect(calls).toBe(3);
  });
});
