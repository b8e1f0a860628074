import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { admin, expectProblem, gw, json, originRecords, seedCaller, unique } from "../helpers";

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

describe("exactness under concurrency", () => {
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

describe("responses", () => {
  it("an allowed response carries the IETF RateLimit headers", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const res = await gw(`/rl-do/${unique("hdr")}`, auth(key));
    expect(res.status).toBe(200);
    expect(res.headers.get("ratelimit-limit")).toBe("20");
    expect(res.headers.get("ratelimit-remaining")).toBe("19");
    expect(Number(res.headers.get("ratelimit-reset"))).toBeGreaterThan(0);
    expect(Number(res.headers.get("ratelimit-reset"))).toBeLessThanOrEqual(3600);
    expect(res.headers.get("ratelimit-policy")).toBe("20;w=3600");
    await res.text();
  });

  it.each(["tb-do", "tb-up"])("%s: a token bucket admits a burst of `limit`, then answers with Retry-After for the next token", async (route) => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique(route);
    const statuses = [];
    for (let i = 0; i < 6; i++) {
      const res = await gw(`/${route}/${marker}/${i}`, auth(key));
      statuses.push(res.status);
      if (res.status === 429) {
        const body = await expectProblem(res, 429, "RATE_LIMITED");
        expect(body.detail).toContain(route);
        // 5 tokens per hour: the next one is ~12 minutes away.
        const retry = Number(res.headers.get("retry-after"));
        expect(retry).toBeGreaterThan(600);
        expect(retry).toBeLessThanOrEqual(720);
      } else await res.text();
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    expect((await originRecords(marker)).length).toBe(5);
  });

  it("the tighter of two limits on a route is the one reported; the quota refuses with QUOTA_EXCEEDED", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("both");
    for (let i = 0; i < 3; i++) {
      const res = await gw(`/both/${marker}/${i}`, auth(key));
      expect(res.status).toBe(200);
      expect(res.headers.get("ratelimit-limit")).toBe("3");
      expect(res.headers.get("ratelimit-remaining")).toBe(String(2 - i));
      await res.text();
    }
    const res = await gw(`/both/${marker}/x`, auth(key));
    await expectProblem(res, 429, "QUOTA_EXCEEDED");
    expect((await originRecords(marker)).length).toBe(3);
  });

  it("a limit keyed by user and route counts each route separately", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const codes = async (route: string) => {
      const out = [];
      for (let i = 0; i < 3; i++) {
        const res = await gw(`/${route}/${unique("pr")}`, auth(key));
        out.push(res.status);
        await res.text();
      }
      return out;
    };
    expect(await codes("rl-route-a")).toEqual([200, 200, 429]);
    expect(await codes("rl-route-b")).toEqual([200, 200, 429]);
  });

  it("a limit keyed by client IP buckets IPv6 per /64", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const net = `2001:db8:${Math.floor(Math.random() * 0xffff).toString(16)}`;
    const from = async (ip: string) => {
      const res = await gw(`/rl-ip/${unique("ip")}`, auth(key, { "cf-connecting-ip": ip }));
      await res.text();
      return res.status;
    };
    expect(await from(`${net}:1::1`)).toBe(200);
    expect(await from(`${net}:1:ffff::2`)).toBe(200);
    expect(await from(`${net}:1::3`)).toBe(429);
    // Another /64 of the same /48 is another subject.
    expect(await from(`${net}:2::1`)).toBe(200);
  });

  it("dry-run admits everything and reports what it would have refused", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("dry");
    const flags = [];
    for (let i = 0; i < 4; i++) {
      const res = await gw(`/rl-dry/${marker}/${i}`, auth(key));
      expect(res.status).toBe(200);
      flags.push(res.headers.get("ratelimit-dry-run"));
      await res.text();
    }
    expect(flags.slice(0, 2)).toEqual([null, null]);
    expect(flags[2]).toBe('would-refuse; limit="rl-dry"; code=RATE_LIMITED');
    expect(flags[3]).toBe('would-refuse; limit="rl-dry"; code=RATE_LIMITED');
    expect((await originRecords(marker)).length).toBe(4);
  });
});

describe("leasing", () => {
  it.each(["rl-do-lease", "rl-up-lease"])("%s: a warm subject spends leased tokens without a backend call per request", async (route) => {
    const { key, user } = await seedCaller({ permissions: ["echo:read"] });
    const first = await gw(`/${route}/${unique("lease")}`, auth(key));
    expect(first.status).toBe(200);
    await first.text();
    // One lease of 5 (20 available, a quarter is 5): the backend counted 5 for 1 request.
    const after1 = (await status(user.id)).find((l) => l.name === route)!;
    expect(after1.used).toBe(5);
    for (let i = 0; i < 4; i++) {
      const res = await gw(`/${route}/${unique("lease")}`, auth(key));
      expect(res.status).toBe(200);
      await res.text();
    }
    // Four more requests, no new lease: they were served from the tokens this isolate holds.
    expect((await status(user.id)).find((l) => l.name === route)!.used).toBe(5);
    // The sixth needs a new lease (15 left, a quarter is 3, capped at leaseMax 5 → 3).
    await (await gw(`/${route}/${unique("lease")}`, auth(key))).text();
    expect((await status(user.id)).find((l) => l.name === route)!.used).toBe(8);
  });
});

describe("quotas", () => {
  it.each(["quota-do", "quota-up"])("%s: shared by all of a user's keys; rotation does not reset it; an admin reset does", async (route) => {
    const { key, keyId, user } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique(route);
    const call = async (k: string) => {
      const res = await gw(`/${route}/${marker}`, auth(k));
      if (res.status !== 200) return { status: res.status, code: (await json(res)).code as string, res };
      await res.text();
      return { status: 200, code: null, res };
    };
    for (let i = 0; i < 3; i++) expect((await call(key)).status).toBe(200);
    const second = await json(await admin("POST", `/users/${user.id}/keys`, {}));
    expect((await call(second.key)).status).toBe(200);
    expect((await call(second.key)).status).toBe(200);
    const refused = await call(key);
    expect(refused).toMatchObject({ status: 429, code: "QUOTA_EXCEEDED" });
    // Retry-After points at the end of the month (UTC).
    const now = new Date();
    const monthEnd = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
    expect(Math.abs(Number(refused.res.headers.get("retry-after")) - (monthEnd - Date.now()) / 1000)).toBeLessThan(60);
    const rotated = await json(await admin("POST", `/keys/${keyId}/rotate`, {}));
    expect(await call(rotated.key)).toMatchObject({ status: 429, code: "QUOTA_EXCEEDED" });
    expect((await originRecords(marker)).length).toBe(5);

    const name = route === "quota-do" ? "monthly" : "monthly-up";
    const before = (await status(user.id)).find((l) => l.name === name)!;
    expect(before).toMatchObject({ used: 5, remaining: 0, limit: 5 });
    const reset = await admin("POST", `/users/${user.id}/limits/reset`, { names: [name] });
    expect(reset.status).toBe(200);
    expect((await json(reset)).limits.find((l: { name: string }) => l.name === name)).toMatchObject({ used: 0, remaining: 5 });
    expect((await call(rotated.key)).status).toBe(200);
    expect((await originRecords(marker)).length).toBe(6);
  });
});

describe("overrides through the admin API", () => {
  async function admitted(key: string, count: number) {
    let ok = 0;
    for (let i = 0; i < count; i++) {
      const res = await gw(`/rl-override/${unique("ov")}`, auth(key));
      if (res.status === 200) ok++;
      await res.text();
    }
    return ok;
  }

  it("user override > most generous role override > route config, live and audited", async () => {
    const base = await seedCaller({ permissions: ["echo:read"] });
    expect(await admitted(base.key, 5)).toBe(3);

    const viaRole = await seedCaller({ permissions: ["echo:read"] });
    const other = await json(await admin("POST", "/roles", { name: unique("role"), permissions: [] }));
    expect((await admin("PUT", `/roles/${viaRole.role.id}/limits`, { limits: { api: { limit: 5 } } })).status).toBe(200);
    expect((await admin("PUT", `/roles/${other.id}/limits`, { limits: { api: { limit: 4 } } })).status).toBe(200);
    expect((await admin("PATCH", `/users/${viaRole.user.id}`, { roles: [viaRole.role.name, other.name] })).status).toBe(200);
    expect(await admitted(viaRole.key, 7)).toBe(5);
    expect((await status(viaRole.user.id)).find((l) => l.name === "api")).toMatchObject({ limit: 5, source: `role:${viaRole.role.name}` });

    const own = await seedCaller({ permissions: ["echo:read"] });
    await admin("PUT", `/roles/${own.role.id}/limits`, { limits: { api: { limit: 5 } } });
    const put = await admin("PUT", `/users/${own.user.id}/limits`, { limits: { api: { limit: 1 } } });
    expect(put.status).toBe(200);
    expect((await json(put)).limits.api.limit).toBe(1);
    expect((await json(await admin("GET", `/users/${own.user.id}/limits`))).limits).toMatchObject({ api: { limit: 1 } });
    expect(await admitted(own.key, 3)).toBe(1);
    expect((await status(own.user.id)).find((l) => l.name === "api")).toMatchObject({ limit: 1, source: "user" });

    // Removing the user override falls back to the role's 5 (1 already used this window).
    expect((await admin("DELETE", `/users/${own.user.id}/limits`)).status).toBe(204);
    expect((await json(await admin("GET", `/users/${own.user.id}/limits`))).limits).toEqual({});
    expect(await admitted(own.key, 6)).toBe(4);

    const audit = await env.DB.prepare("SELECT action FROM admin_audit WHERE target_id = ? ORDER BY created_at").bind(own.user.id).all<{ action: string }>();
    expect(audit.results.map((r) => r.action)).toEqual(expect.arrayContaining(["user.limits.set", "user.limits.clear"]));
    const roleAudit = await env.DB.prepare("SELECT action FROM admin_audit WHERE target_id = ? AND action = 'role.limits.set'").bind(own.role.id).all();
    expect(roleAudit.results.length).toBe(1);
  });

  it("refuses unknown limit names, bad bodies and unknown subjects with problems", async () => {
    const { user, role } = await seedCaller({ permissions: ["echo:read"] });
    const bad = await expectProblem(await admin("PUT", `/users/${user.id}/limits`, { limits: { nope: { limit: 1 } } }), 400, "VALIDATION_FAILED");
    expect(bad.errors[0].path).toBe("limits.nope");
    await expectProblem(await admin("PUT", `/users/${user.id}/limits`, { limits: { api: { limit: -1 } } }), 400, "VALIDATION_FAILED");
    await expectProblem(await admin("PUT", `/users/${user.id}/limits`, { limits: { api: { limit: 1, extra: true } } }), 400, "VALIDATION_FAILED");
    await expectProblem(await admin("PUT", `/roles/${role.id}/limits`, { limits: {}, more: 1 }), 400, "VALIDATION_FAILED");
    await expectProblem(await admin("GET", "/users/usr_doesnotexist0000/limits/status"), 404, "USER_NOT_FOUND");
    await expectProblem(await admin("PUT", "/roles/rol_doesnotexist0000/limits", { limits: {} }), 404, "ROLE_NOT_FOUND");
    await expectProblem(await admin("POST", `/users/${user.id}/limits/reset`, { names: ["rl-ip"] }), 400, "VALIDATION_FAILED");
    await expectProblem(await gw(`/admin/v1/users/${user.id}/limits`), 401, "ADMIN_UNAUTHORIZED");
  });
});
