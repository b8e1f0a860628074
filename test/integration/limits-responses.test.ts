// Rate limits and quotas: headers, algorithms, subjects, dry-run, quota sharing and reset.
import { beforeEach, describe, expect, it } from "vitest";
import { authorize } from "../../plugins/authorize";
import { keyAuth } from "../../plugins/key-auth";
import { quota } from "../../plugins/quota";
import { rateLimit } from "../../plugins/rate-limit";
import { admin, expectProblem, gw, json, originRecords, seedCaller, testGateway, unique } from "../helpers";
import { clearOfHourEdge, startOfFreshWindow } from "../window-edges";

const auth = (key: string, extra: Record<string, string> = {}) => ({ headers: { authorization: `Bearer ${key}`, ...extra } });

// These tests count against 1 h windows and quota periods: never across an hour edge (test/window-edges.ts).
beforeEach(() => clearOfHourEdge(20_000), 30_000);

async function status(userId: string) {
  const res = await admin("GET", `/users/${userId}/limits/status`);
  expect(res.status).toBe(200);
  return (await json(res)).limits as Array<{ name: string; route: string | null; used: number; remaining: number; limit: number; source: string; backend: string }>;
}

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

describe("draft-08 headers (`headers: \"draft-08\"`)", () => {
  // The structured RateLimit / RateLimit-Policy lists: one member per limit, named after it.
  const viaDownBridge = { backend: "upstash", upstash: { urlFromEnv: "UPSTASH_DOWN_URL", tokenFromEnv: "UPSTASH_TEST_TOKEN" }, timeoutMs: 200 } as const;
  const call = testGateway({
    plugins: [keyAuth(), authorize()],
    routes: [
      {
        name: "sf",
        path: "/sf/*",
        methods: ["GET"],
        upstream: "echo",
        permission: "echo:read",
        plugins: [rateLimit({ name: "sf-rate", limit: 3, window: "1h", headers: "draft-08" }), quota({ name: "sf-quota", limit: 4, period: "day", headers: "draft-08" })],
      },
      {
        name: "sf-open",
        path: "/sf-open/*",
        methods: ["GET"],
        upstream: "echo",
        permission: "echo:read",
        plugins: [rateLimit({ name: "sf-open", limit: 5, window: "1m", headers: "draft-08", ...viaDownBridge })],
      },
    ],
  });
  /** A list field's members by name: `"a";r=1;t=2, "b";…` → { a: { r: 1, t: 2 }, b: … }. */
  const members = (field: string | null) =>
    Object.fromEntries(
      (field ?? "").split(", ").filter(Boolean).map((m) => {
        const [name, ...params] = m.split(";");
        return [JSON.parse(name!), Object.fromEntries(params.map((p) => p.split("=")).map(([k, v]) => [k, Number(v)]))];
      }),
    );

  it("an admitted response lists every limit of the route with what is left; the draft-06 fields are absent", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("sf");
    const res = await call(`/sf/${marker}/0`, auth(key));
    expect(res.status).toBe(200);
    expect(members(res.headers.get("ratelimit-policy"))).toEqual({ "sf-rate": { q: 3, w: 3600 }, "sf-quota": { q: 4, w: 86_400 } });
    const current = members(res.headers.get("ratelimit"));
    expect(Object.keys(current).sort()).toEqual(["sf-quota", "sf-rate"]);
    expect(current["sf-rate"].r).toBe(2);
    expect(current["sf-rate"].t).toBeGreaterThan(0);
    expect(current["sf-rate"].t).toBeLessThanOrEqual(3600);
    expect(current["sf-quota"].r).toBe(3);
    expect(current["sf-quota"].t).toBeGreaterThan(0);
    expect(current["sf-quota"].t).toBeLessThanOrEqual(86_400);
    for (const name of ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"]) expect(res.headers.get(name)).toBeNull();
  });

  it("a refusal names the limit that refused with r=0, and Retry-After; the origin never sees it", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("sf");
    for (let i = 0; i < 3; i++) expect((await call(`/sf/${marker}/${i}`, auth(key))).status).toBe(200);
    const res = await call(`/sf/${marker}/x`, auth(key));
    await expectProblem(res, 429, "RATE_LIMITED");
    // The rate limit runs first and refuses before the quota is asked: only its members.
    expect(members(res.headers.get("ratelimit-policy"))).toEqual({ "sf-rate": { q: 3, w: 3600 } });
    const current = members(res.headers.get("ratelimit"));
    expect(Object.keys(current)).toEqual(["sf-rate"]);
    expect(current["sf-rate"].r).toBe(0);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    expect((await originRecords(marker)).length).toBe(3);
  });

  it("failing open, a limit names its policy but says nothing of what is left", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const res = await call(`/sf-open/${unique("sf")}`, auth(key));
    expect(res.status).toBe(200);
    expect(res.headers.get("ratelimit-policy")).toBe('"sf-open";q=5;w=60');
    expect(res.headers.get("ratelimit")).toBeNull();
  });
});

describe("window expiry", () => {
  it("a spent window refuses with Retry-After until it ends, and the next window admits again", async () => {
    // Expiry is the point here, so the route has a short window (fixed, 1 per 2 s). The first two
    // requests must fall in one window: each attempt starts at a fresh window's start, and an
    // attempt that a stalled machine let run past that window's end proves nothing and is
    // discarded. A fresh user (so a fresh counter) and marker per attempt.
    let seen: { key: string; marker: string; first: Response; second: Response; body: string } | undefined;
    for (let attempt = 0; attempt < 3 && !seen; attempt++) {
      const { key } = await seedCaller({ permissions: ["echo:read"] });
      await (await gw(`/echo/${unique("warm")}`, auth(key))).text();
      const marker = unique("expiry");
      const end = await startOfFreshWindow(2_000);
      const first = await gw(`/rl-expiry/${marker}/1`, auth(key));
      await first.text();
      const second = await gw(`/rl-expiry/${marker}/2`, auth(key));
      const body = await second.text();
      if (Date.now() < end) seen = { key, marker, first, second, body };
    }
    expect(seen, "every attempt ran past the end of its 2 s window").toBeDefined();
    const { key, marker, first, second, body } = seen!;
    expect(first.status).toBe(200);
    expect(first.headers.get("ratelimit-policy")).toBe("1;w=2");
    expect(second.status).toBe(429);
    expect(JSON.parse(body).code).toBe("RATE_LIMITED");
    const retry = Number(second.headers.get("retry-after"));
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(2);

    await startOfFreshWindow(2_000);
    const third = await gw(`/rl-expiry/${marker}/3`, auth(key));
    expect(third.status).toBe(200);
    await third.text();
    expect((await originRecords(marker)).map((r) => r.url.split("/").at(-1))).toEqual(["1", "3"]);
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

