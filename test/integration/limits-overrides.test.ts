// Limit overrides per role and per user through the admin API.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { admin, expectProblem, gw, json, originRecords, seedCaller, unique } from "../helpers";
import { clearOfHourEdge } from "../window-edges";

const auth = (key: string, extra: Record<string, string> = {}) => ({ headers: { authorization: `Bearer ${key}`, ...extra } });

async function status(userId: string) {
  const res = await admin("GET", `/users/${userId}/limits/status`);
  expect(res.status).toBe(200);
  return (await json(res)).limits as Array<{ name: string; route: string | null; used: number; remaining: number; limit: number; source: string; backend: string }>;
}

describe("overrides through the admin API", () => {
  // Counting against a 1 h window: never across an hour edge (test/window-edges.ts).
  beforeEach(() => clearOfHourEdge(20_000), 30_000);

  /** How many of `count` sequential requests were admitted (every other answer must be a 429). */
  async function admitted(key: string, count: number) {
    const statuses: number[] = [];
    for (let i = 0; i < count; i++) {
      const res = await gw(`/rl-override/${unique("ov")}`, auth(key));
      statuses.push(res.status);
      await res.text();
    }
    expect(statuses.every((s) => s === 200 || s === 429), `statuses: ${statuses.join(",")}`).toBe(true);
    return statuses.filter((s) => s === 200).length;
  }

  it("renaming a role keeps its override in force at once in the isolate that took the change", async () => {
    // The override snapshot maps role names to overrides; renaming the role purged the caller's
    // identity (now holding the new name) but not the snapshot, so for the cache's TTL the user
    // got the route's 3 instead of the role's 5, even where the admin call landed.
    const { key, role, user } = await seedCaller({ permissions: ["echo:read"] });
    expect((await admin("PUT", `/roles/${role.id}/limits`, { limits: { api: { limit: 5 } } })).status).toBe(200);
    expect(await admitted(key, 2)).toBe(2);
    const renamed = unique("renamed");
    expect((await admin("PATCH", `/roles/${role.id}`, { name: renamed })).status).toBe(200);
    expect((await status(user.id)).find((l) => l.name === "api")).toMatchObject({ limit: 5, source: `role:${renamed}` });
    expect(await admitted(key, 5)).toBe(3);
  });

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

  it("lists the limits the gateway config declares, with their defaults and whether they count per user", async () => {
    const res = await admin("GET", "/limits");
    expect(res.status).toBe(200);
    const { data } = await json(res);
    expect(data.find((d: { name: string }) => d.name === "api")).toEqual({
      name: "api",
      kind: "rate",
      algorithm: "sliding-window",
      limit: 3,
      window: "3600s",
      period: null,
      by: ["user"],
      routes: ["rl-override"],
      perUser: true,
      dryRun: false,
      failMode: "open",
    });
    expect(data.find((d: { name: string }) => d.name === "monthly")).toMatchObject({ kind: "quota", period: "month", limit: 5, failMode: "closed", perUser: true });
    expect(data.find((d: { name: string }) => d.name === "per-route")).toMatchObject({ by: ["user", "route"], routes: ["rl-route-a", "rl-route-b"], perUser: true });
    expect(data.find((d: { name: string }) => d.name === "rl-ip")).toMatchObject({ by: ["ip"], perUser: false });
    // Windows are shown in seconds, however the config wrote them ("1m" by default, "2s").
    expect(data.find((d: { name: string }) => d.name === "fail-up-down-open")).toMatchObject({ kind: "rate", window: "60s", by: ["key"], perUser: false });
    expect(data.find((d: { name: string }) => d.name === "rl-expiry")).toMatchObject({ algorithm: "fixed-window", limit: 1, window: "2s" });
    // One entry per name.
    expect(new Set(data.map((d: { name: string }) => d.name)).size).toBe(data.length);
    await expectProblem(await gw("/admin/v1/limits"), 401, "ADMIN_UNAUTHORIZED");
  });
});

describe("a limit of 0 blocks without the backend", () => {
  it("a user blocked with a 0 override is refused while the limit's backend is down, although the limit fails open", async () => {
    // fail-up-down-open: a rate limit (fail open) on an Upstash that refuses connections.
    const blocked = await seedCaller({ permissions: ["echo:read"] });
    const free = await seedCaller({ permissions: ["echo:read"] });
    expect((await admin("PUT", `/users/${blocked.user.id}/limits`, { limits: { "fail-up-down-open": { limit: 0 } } })).status).toBe(200);
    const marker = unique("zero");
    const res = await gw(`/fail-up-down-open/${marker}/blocked`, auth(blocked.key));
    const problem = await expectProblem(res, 429, "RATE_LIMITED");
    expect(problem.detail).toContain("(0 per 60s)");
    expect(res.headers.get("ratelimit-limit")).toBe("0");
    expect(res.headers.get("ratelimit-remaining")).toBe("0");
    // Until the window ends (60 s windows), never 0.
    const retry = Number(res.headers.get("retry-after"));
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(60);
    expect(res.headers.get("ratelimit-reset")).toBe(String(retry));
    // Everyone else still gets the fail mode: admitted, uncounted.
    expect((await gw(`/fail-up-down-open/${marker}/free`, auth(free.key))).status).toBe(200);
    const seen = (await originRecords(marker)).map((r) => new URL(r.url, "http://o").pathname.split("/").pop());
    expect(seen).toEqual(["free"]);
  });
});
