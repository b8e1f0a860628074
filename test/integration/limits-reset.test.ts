// Resetting a user's limits when some limiter backends are down: every reachable counter is reset,
// each counter's outcome is reported (admin API 200 / 207 / 503, dashboard message), and the audit
// row says what was done. Real backends: the LIMITER Durable Object, the Upstash bridge over the
// local Redis, an Upstash URL nobody listens on, and a Durable Object that never answers.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { authorize } from "../../plugins/authorize";
import { keyAuth } from "../../plugins/key-auth";
import { quota } from "../../plugins/quota";
import { rateLimit } from "../../plugins/rate-limit";
import type { PluginInstance } from "../../worker/gateway/types";
import { ORIGIN, signIn } from "../dashboard-helpers";
import { ADMIN, expectProblem, seedCaller, testGateway, unique } from "../helpers";
import { clearOfHourEdge } from "../window-edges";

// Redis outlives a test run: this file's counters live under a per-run prefix.
const run = Math.random().toString(36).slice(2, 8);
const upstash = (urlFromEnv: string) => ({ backend: "upstash", upstash: { urlFromEnv, tokenFromEnv: "UPSTASH_TEST_TOKEN", prefix: `pcreset-${run}` } }) as const;
const route = (name: string, plugins: PluginInstance[]) => ({ name, path: `/${name}/*`, methods: ["GET" as const], upstream: "echo", permission: "echo:read", plugins });

/** A gateway of this file's own, with per-user limits on healthy and broken backends. */
const call = testGateway({
  plugins: [keyAuth(), authorize()],
  routes: [
    route("q-do", [quota({ name: "q-do", limit: 3, period: "month" })]),
    route("q-up", [quota({ name: "q-up", limit: 3, period: "month", ...upstash("UPSTASH_TEST_URL") })]),
    // Nothing listens on this Upstash URL: refused at once.
    route("q-down", [quota({ name: "q-down", limit: 3, period: "month", ...upstash("UPSTASH_DOWN_URL") })]),
    // A Durable Object that never answers: given up after 300 ms.
    route("q-stall", [quota({ name: "q-stall", limit: 3, period: "month", durableObjectBinding: "LIMITER_STALLED", timeoutMs: 300 })]),
    // Counted per user and route: one counter per route.
    route("pr-a", [rateLimit({ name: "per-route", limit: 2, window: "1h", by: ["user", "route"] })]),
    route("pr-b", [rateLimit({ name: "per-route", limit: 2, window: "1h", by: ["user", "route"] })]),
  ],
});

const reset = (userId: string, body: unknown = {}) =>
  call(`/admin/v1/users/${userId}/limits/reset`, { method: "POST", headers: { ...ADMIN, "content-type": "application/json" }, body: JSON.stringify(body) });
const status = async (userId: string) => ((await (await call(`/admin/v1/users/${userId}/limits/status`, { headers: ADMIN })).json()) as any).limits as any[];
const spend = async (path: string, key: string, n: number) => {
  const out = [];
  for (let i = 0; i < n; i++) {
    const res = await call(`/${path}/${unique("r")}`, { headers: { authorization: `Bearer ${key}` } });
    out.push(res.status);
    await res.arrayBuffer();
  }
  return out;
};
async function resetAudit(userId: string) {
  const rows = await env.DB.prepare("SELECT actor, after FROM admin_audit WHERE target_id = ? AND action = 'user.limits.reset' ORDER BY created_at, seq").bind(userId).all<{ actor: string; after: string }>();
  return rows.results.map((r) => ({ actor: r.actor, after: JSON.parse(r.after) }));
}
const resultOf = (name: string, route: string | null, backend: string, outcome: "reset" | "unavailable") => ({
  name,
  route,
  backend,
  outcome,
  error: outcome === "reset" ? null : "LIMITER_UNAVAILABLE",
});

// The counters here are monthly quotas and 1 h windows: never across an hour edge (test/window-edges.ts).
beforeEach(() => clearOfHourEdge(20_000), 30_000);

describe("admin API: resetting a user's limits, counter by counter", () => {
  it("200 when every chosen counter is reset, with each counter's outcome and the usage after", async () => {
    const { user, key } = await seedCaller({ permissions: ["echo:read"] });
    expect(await spend("q-do", key, 3)).toEqual([200, 200, 200]);
    expect(await spend("q-up", key, 3)).toEqual([200, 200, 200]);
    expect(await spend("pr-a", key, 2)).toEqual([200, 200]);
    expect(await spend("pr-b", key, 1)).toEqual([200]);

    const res = await reset(user.id, { names: ["q-do", "q-up", "per-route"] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body.results).toEqual([
      resultOf("q-do", null, "durable-object", "reset"),
      resultOf("q-up", null, "upstash", "reset"),
      resultOf("per-route", "pr-a", "durable-object", "reset"),
      resultOf("per-route", "pr-b", "durable-object", "reset"),
    ]);
    const used = (name: string, r: string | null = null) => body.limits.find((l: any) => l.name === name && l.route === r)?.used;
    expect([used("q-do"), used("q-up"), used("per-route", "pr-a"), used("per-route", "pr-b")]).toEqual([0, 0, 0, 0]);
    expect(await spend("q-do", key, 4)).toEqual([200, 200, 200, 429]);
    expect(await spend("pr-a", key, 3)).toEqual([200, 200, 429]);
    expect(await resetAudit(user.id)).toEqual([
      {
        actor: "admin-token",
        after: {
          reset: [
            { name: "q-do", route: null },
            { name: "q-up", route: null },
            { name: "per-route", route: "pr-a" },
            { name: "per-route", route: "pr-b" },
          ],
        },
      },
    ]);
  });

  it("207 when some backends do not answer: every reachable counter is still reset, and the answer says which were not", async () => {
    const { user, key } = await seedCaller({ permissions: ["echo:read"] });
    expect(await spend("q-do", key, 4)).toEqual([200, 200, 200, 429]);
    expect(await spend("q-up", key, 4)).toEqual([200, 200, 200, 429]);
    // The broken quotas fail closed.
    expect(await spend("q-down", key, 1)).toEqual([503]);

    const started = Date.now();
    const res = await reset(user.id); // {}: all of the user's quotas
    expect(res.status).toBe(207);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    // The stalled backend is given up after its 300 ms budget, not waited for.
    expect(Date.now() - started).toBeLessThan(5_000);
    const body = (await res.json()) as any;
    expect(body.userId).toBe(user.id);
    expect(body.results).toEqual([
      resultOf("q-do", null, "durable-object", "reset"),
      resultOf("q-up", null, "upstash", "reset"),
      resultOf("q-down", null, "upstash", "unavailable"),
      resultOf("q-stall", null, "durable-object", "unavailable"),
    ]);
    expect(body.limits.find((l: any) => l.name === "q-do")).toMatchObject({ used: 0, remaining: 3, error: null });
    expect(body.limits.find((l: any) => l.name === "q-up")).toMatchObject({ used: 0, remaining: 3, error: null });
    expect(body.limits.find((l: any) => l.name === "q-down")).toMatchObject({ used: null, error: "LIMITER_UNAVAILABLE" });
    // The reset counters really are back to zero.
    expect(await spend("q-do", key, 1)).toEqual([200]);
    expect(await spend("q-up", key, 1)).toEqual([200]);
    expect((await status(user.id)).find((l) => l.name === "q-do")).toMatchObject({ used: 1 });
    // The audit row says what was done and what was not.
    expect(await resetAudit(user.id)).toEqual([
      {
        actor: "admin-token",
        after: {
          reset: [
            { name: "q-do", route: null },
            { name: "q-up", route: null },
          ],
          unavailable: [
            { name: "q-down", route: null },
            { name: "q-stall", route: null },
          ],
        },
      },
    ]);
  });

  it("503 LIMITER_UNAVAILABLE when none of the chosen counters can be reset: nothing changed, nothing audited", async () => {
    const { user, key } = await seedCaller({ permissions: ["echo:read"] });
    expect(await spend("q-do", key, 2)).toEqual([200, 200]);
    const res = await reset(user.id, { names: ["q-down", "q-stall"] });
    const problem = await expectProblem(res, 503, "LIMITER_UNAVAILABLE");
    expect(res.headers.get("retry-after")).toBe("1");
    expect(problem.detail).toBe('No limit was reset: the limiter backend of "q-down", "q-stall" did not answer. Try again shortly.');
    expect(await resetAudit(user.id)).toEqual([]);
    expect((await status(user.id)).find((l) => l.name === "q-do")).toMatchObject({ used: 2 });
  });
});

describe("dashboard: a reset says per limit what happened", () => {
  const resetForm = async (userId: string, fields: Record<string, string>) => {
    const { cookie, csrf } = await signIn();
    const res = await call(`/admin/ui/users/${userId}/limits/reset`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: ORIGIN, cookie },
      body: new URLSearchParams({ ...fields, _csrf: csrf }),
    });
    expect(res.status).toBe(303);
    const location = res.headers.get("location")!;
    const page = await call(location, { headers: { cookie } });
    expect(page.status).toBe(200);
    const html = await page.text();
    const text = (re: RegExp) => re.exec(html)?.[1]?.replaceAll("&quot;", '"');
    return { location, notice: text(/<p class="notice" role="status">([^<]*)<\/p>/), alert: text(/<p class="error" role="alert">([^<]*)<\/p>/) };
  };

  it("some reset, some not: a notice names those reset and an alert those whose backend did not answer", async () => {
    const { user, key } = await seedCaller({ permissions: ["echo:read"] });
    expect(await spend("q-do", key, 3)).toEqual([200, 200, 200]);
    const page = await resetForm(user.id, {});
    expect(page.location).toBe(`/admin/ui/users/${user.id}?notice=limits-reset&reset=q-do&reset=q-up&unavailable=q-down&unavailable=q-stall#limits`);
    expect(page.notice).toBe("Usage reset: q-do, q-up.");
    expect(page.alert).toBe("Not reset: q-down, q-stall — the limiter backend did not answer. Try again shortly.");
    expect((await status(user.id)).find((l) => l.name === "q-do")).toMatchObject({ used: 0 });
    expect((await resetAudit(user.id)).map((r) => r.actor)).toEqual(["admin-ui"]);
  });

  it("nothing reset: only the alert; everything reset: only the notice, per-route counters named by route", async () => {
    const { user } = await seedCaller({ permissions: ["echo:read"] });
    const none = await resetForm(user.id, { names: "q-stall" });
    expect(none.notice).toBeUndefined();
    expect(none.alert).toBe("Nothing was reset: q-stall — the limiter backend did not answer. Try again shortly.");
    expect(await resetAudit(user.id)).toEqual([]);

    const all = await resetForm(user.id, { names: "per-route" });
    expect(all.notice).toBe("Usage reset: per-route (route pr-a), per-route (route pr-b).");
    expect(all.alert).toBeUndefined();
  });
});

describe("shared counters: the user's group's and the route's", () => {
  /** A gateway with a quota of the user's own, one per group, one counter per route and one per key. */
  const callShared = testGateway({
    plugins: [keyAuth(), authorize()],
    routes: [
      route("q-do", [quota({ name: "q-do", limit: 3, period: "month" })]),
      // A user without a group is counted alone (worker/limits/engine.ts, subjectKey).
      route("g-quota", [quota({ name: "g-quota", limit: 3, period: "month", by: ["group"] })]),
      route("rt-rate", [rateLimit({ name: "rt-rate", limit: 100, window: "1h", by: ["route"] })]),
      route("k-rate", [rateLimit({ name: "k-rate", limit: 100, window: "1h", by: ["key"] })]),
      // A group quota on a Durable Object that never answers: given up after 300 ms.
      route("g-stall", [quota({ name: "g-stall", limit: 3, period: "month", by: ["group"], durableObjectBinding: "LIMITER_STALLED", timeoutMs: 300 })]),
    ],
  });
  const reset = (userId: string, body: unknown = {}) =>
    callShared(`/admin/v1/users/${userId}/limits/reset`, { method: "POST", headers: { ...ADMIN, "content-type": "application/json" }, body: JSON.stringify(body) });
  const status = async (userId: string) => ((await (await callShared(`/admin/v1/users/${userId}/limits/status`, { headers: ADMIN })).json()) as any).limits as any[];
  const spend = async (path: string, key: string, n: number) => {
    const out = [];
    for (let i = 0; i < n; i++) out.push((await callShared(`/${path}/${unique("r")}`, { headers: { authorization: `Bearer ${key}` } })).status);
    return out;
  };

  it("status shows them marked shared, with the usage everyone spent; a user's reset leaves them alone", async () => {
    const group = unique("grp");
    const a = await seedCaller({ permissions: ["echo:read"], group });
    const b = await seedCaller({ permissions: ["echo:read"], group });
    const solo = await seedCaller({ permissions: ["echo:read"] });
    expect(await spend("g-quota", a.key, 2)).toEqual([200, 200]);
    expect(await spend("rt-rate", a.key, 1)).toEqual([200]);

    const [sa, sb, ss] = await Promise.all([status(a.user.id), status(b.user.id), status(solo.user.id)]);
    const of = (s: any[], name: string) => s.find((l) => l.name === name);
    // b spent nothing, yet sees what a spent from the group's counter.
    expect(of(sb, "g-quota")).toMatchObject({ shared: true, used: 2, remaining: 1, limit: 3, by: ["group"], error: null });
    expect(of(sa, "g-quota")).toMatchObject({ shared: true, used: 2, remaining: 1 });
    expect(of(sb, "q-do")).toMatchObject({ shared: false, used: 0 });
    // Without a group, a group limit counts the user alone.
    expect(of(ss, "g-quota")).toMatchObject({ shared: false, used: 0, remaining: 3 });
    // The route's counter is everyone's (leased tokens included, so at least the one request).
    expect(of(sb, "rt-rate")).toMatchObject({ shared: true, by: ["route"], error: null });
    expect(of(sb, "rt-rate").used).toBeGreaterThanOrEqual(1);
    expect(of(ss, "rt-rate")).toMatchObject({ shared: true, used: of(sb, "rt-rate").used });
    // Limits counted per key or client IP are still not listed.
    expect(sb.map((l) => l.name).sort()).toEqual(["g-quota", "g-stall", "q-do", "rt-rate"]);

    // Resetting one user must not reset the group's or the route's counter.
    await expectProblem(await reset(b.user.id, { names: ["g-quota"] }), 400, "VALIDATION_FAILED");
    const all = await reset(b.user.id);
    expect(all.status).toBe(200);
    expect(((await all.json()) as any).results.map((r: any) => r.name)).toEqual(["q-do"]);
    expect(of(await status(a.user.id), "g-quota")).toMatchObject({ used: 2 });
    // And it is the counter requests spend from: b gets the group's last one.
    expect(await spend("g-quota", b.key, 2)).toEqual([200, 429]);
    // A user counted alone is reset as before.
    expect(await spend("g-quota", solo.key, 1)).toEqual([200]);
    expect((await reset(solo.user.id, { names: ["g-quota"] })).status).toBe(200);
    expect(of(await status(solo.user.id), "g-quota")).toMatchObject({ shared: false, used: 0 });

    // The dashboard marks the shared row and offers no reset on it.
    const { cookie, csrf } = await signIn();
    const html = await (await callShared(`/admin/ui/users/${b.user.id}`, { headers: { cookie } })).text();
    const row = (name: string) => html.match(new RegExp(`<tr data-limit="${name}">[\\s\\S]*?</tr>`))?.[0] ?? "";
    expect(row("g-quota")).toContain("(shared)");
    expect(row("g-quota")).not.toContain("Reset usage of g-quota");
    expect(row("q-do")).not.toContain("(shared)");
    expect(row("q-do")).toContain("Reset usage of q-do");
    // It offers the group's reset instead, for the user's own group (the form cannot name another).
    expect(row("g-quota")).toContain(`Reset g-quota to zero for everyone in group ${group}?`);
    const done = await callShared(`/admin/ui/users/${b.user.id}/limits/shared-reset`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: ORIGIN, cookie },
      body: new URLSearchParams({ name: "g-quota", group: "someone-elses", _csrf: csrf }),
    });
    expect(done.status).toBe(303);
    expect(done.headers.get("location")).toBe(`/admin/ui/users/${b.user.id}?notice=limits-reset&reset=g-quota#limits`);
    expect(of(await status(a.user.id), "g-quota")).toMatchObject({ shared: true, used: 0 });
    const uiRow = await env.DB.prepare("SELECT actor, after FROM admin_audit WHERE action = 'limit.reset' AND target_id = 'g-quota' ORDER BY created_at DESC, seq DESC LIMIT 1").first<{ actor: string; after: string }>();
    expect(uiRow?.actor).toBe("admin-ui");
    expect(JSON.parse(uiRow!.after).group).toBe(group);
  });

  it("an admin reads and resets a shared counter itself: a group's quota, a route's rate", async () => {
    const group = unique("grp");
    const a = await seedCaller({ permissions: ["echo:read"], group });
    const b = await seedCaller({ permissions: ["echo:read"], group });
    expect(await spend("g-quota", a.key, 2)).toEqual([200, 200]);
    expect(await spend("g-quota", b.key, 2)).toEqual([200, 429]);
    const get = async (path: string) => callShared(`/admin/v1${path}`, { headers: ADMIN });
    const post = async (path: string) => callShared(`/admin/v1${path}`, { method: "POST", headers: ADMIN });

    const status = await get(`/limits/g-quota/status?group=${group}`);
    expect(status.status).toBe(200);
    expect(await status.json()).toMatchObject({ name: "g-quota", group, limits: [{ name: "g-quota", route: null, used: 3, remaining: 0, limit: 3, source: "config", shared: true, error: null }] });

    const res = await post(`/limits/g-quota/reset?group=${group}`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body.results).toEqual([resultOf("g-quota", null, "durable-object", "reset")]);
    expect(body.limits[0]).toMatchObject({ used: 0, remaining: 3 });
    // Every member of the group is served again; the audit row names the limit and the group.
    expect(await spend("g-quota", b.key, 1)).toEqual([200]);
    const row = await env.DB.prepare("SELECT actor, target_type, after FROM admin_audit WHERE action = 'limit.reset' AND target_id = 'g-quota' ORDER BY created_at DESC, seq DESC LIMIT 1").first<{ actor: string; target_type: string; after: string }>();
    expect(row).toMatchObject({ actor: "admin-token", target_type: "limit" });
    expect(JSON.parse(row!.after)).toEqual({ group, reset: [{ name: "g-quota", route: null }] });

    // A route's counter needs no group; its usage is everyone's on the route.
    expect(await spend("rt-rate", a.key, 1)).toEqual([200]);
    const route = (await (await get("/limits/rt-rate/status")).json()) as any;
    expect(route).toMatchObject({ name: "rt-rate", group: null, limits: [{ route: "rt-rate", shared: true, source: "config" }] });
    expect(route.limits[0].used).toBeGreaterThanOrEqual(1);
    expect((await post("/limits/rt-rate/reset")).status).toBe(200);
    expect(((await (await get("/limits/rt-rate/status")).json()) as any).limits[0].used).toBe(0);

    // What is not a shared counter, or not named right, is refused and changes nothing.
    await expectProblem(await get("/limits/g-quota/status"), 400, "VALIDATION_FAILED");
    await expectProblem(await get(`/limits/rt-rate/status?group=${group}`), 400, "VALIDATION_FAILED");
    await expectProblem(await get("/limits/q-do/status"), 400, "VALIDATION_FAILED");
    await expectProblem(await post("/limits/k-rate/reset"), 400, "VALIDATION_FAILED");
    await expectProblem(await get("/limits/nope/status"), 404, "LIMIT_NOT_FOUND");
    // A backend that never answers: 503, nothing audited.
    const stalled = await post(`/limits/g-stall/reset?group=${group}`);
    await expectProblem(stalled, 503, "LIMITER_UNAVAILABLE");
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM admin_audit WHERE action = 'limit.reset' AND target_id = 'g-stall'").first<{ n: number }>()).toEqual({ n: 0 });
  });
});
