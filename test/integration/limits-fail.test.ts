import { describe, expect, it } from "vitest";
import { audit } from "../../plugins/audit";
import { keyAuth } from "../../plugins/key-auth";
import { quota } from "../../plugins/quota";
import { rateLimit } from "../../plugins/rate-limit";
import { eventsFor, waitForEvents } from "../audit-helpers";
import { admin, expectProblem, gw, json, originRecords, seedCaller, testGateway, unique } from "../helpers";

// Generous: the limits under test time out after 300 ms; the stalled backends would take 30 s.
const BOUND_MS = 5_000;

describe("backend down → the declared fail mode, within the bounded timeout", () => {
  it.each([
    ["fail-do-stall-open", "Durable Object that never answers"],
    ["fail-up-down-open", "Upstash that refuses connections"],
    ["fail-up-stall-open", "Upstash that never answers"],
  ])("%s: a fail-open rate limit admits (%s)", async (route) => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique(route);
    const started = Date.now();
    const res = await gw(`/${route}/${marker}`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(200);
    await res.text();
    expect(Date.now() - started).toBeLessThan(BOUND_MS);
    expect((await originRecords(marker)).length).toBe(1);
    // Still a limited response: which limit applies, but no guessed Remaining or Reset.
    expect(res.headers.get("ratelimit-limit")).toBe("5");
    expect(res.headers.get("ratelimit-policy")).toBe("5;w=60");
    expect(res.headers.get("ratelimit-remaining")).toBeNull();
    expect(res.headers.get("ratelimit-reset")).toBeNull();
  });

  it.each([
    ["fail-do-stall-closed", "Durable Object that never answers"],
    ["fail-do-broken-closed", "Durable Object that throws"],
    ["fail-up-down-closed", "Upstash that refuses connections"],
    ["fail-up-stall-closed", "Upstash that never answers"],
  ])("%s: a fail-closed quota answers 503 LIMITER_UNAVAILABLE and forwards nothing (%s)", async (route) => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique(route);
    const started = Date.now();
    const res = await gw(`/${route}/${marker}`, { headers: { authorization: `Bearer ${key}` } });
    const body = await expectProblem(res, 503, "LIMITER_UNAVAILABLE");
    expect(body.detail).toContain(route);
    expect(res.headers.get("retry-after")).toBe("1");
    // Still a limited response (every one carries the RateLimit fields): which limit, not what is left.
    expect(res.headers.get("ratelimit-limit")).toBe("5");
    expect(res.headers.get("ratelimit-policy")).toBe("5;w=2592000");
    expect(res.headers.get("ratelimit-remaining")).toBeNull();
    expect(Date.now() - started).toBeLessThan(BOUND_MS);
    expect((await originRecords(marker)).length).toBe(0);
  });
});

describe("fail-mode events are counted across isolates: the audit trail's limitOutcome filter", () => {
  it("finds the requests a limit let through fail-open, and those it refused fail-closed, and no others", async () => {
    const { user, key } = await seedCaller({ permissions: ["echo:read"] });
    const auth = { headers: { authorization: `Bearer ${key}` } };
    const marker = unique("outcomes");
    // Two fail-open admissions, one fail-closed refusal, one request no limit touched, one the limit refused.
    for (const p of [`/fail-up-down-open/${marker}/1`, `/fail-up-down-open/${marker}/2`, `/fail-up-down-closed/${marker}/3`, `/echo/${marker}/4`]) await (await gw(p, auth)).text();
    for (let i = 0; i < 3; i++) await (await gw(`/rl-override/${marker}/r${i}`, auth)).text();
    expect((await gw(`/rl-override/${marker}/r3`, auth)).status).toBe(429);
    await waitForEvents("user_id = ? AND path LIKE ?", [user.id, `%${marker}%`], 8);

    const paths = async (q: string) => {
      const res = await admin("GET", `/audit/requests?userId=${user.id}&${q}`);
      expect(res.status, q).toBe(200);
      return ((await json(res)).data as { path: string }[]).map((e) => e.path.split("/").pop()).sort();
    };
    expect(await paths("limitOutcome=fail-open")).toEqual(["1", "2"]);
    expect(await paths("limitOutcome=fail-closed")).toEqual(["3"]);
    expect(await paths("limitOutcome=refused")).toEqual(["r3"]);
    expect(await paths("limitOutcome=fail-open&decision=refused")).toEqual([]);
    await expectProblem(await admin("GET", "/audit/requests?limitOutcome=open"), 400, "VALIDATION_FAILED");

    // The usage rollups count fail-open admissions apart from the others, per bucket.
    const from = new Date(Date.now() - 86_400_000).toISOString();
    const usage = await json(await admin("GET", `/usage?by=user&value=${user.id}&granularity=day&from=${from}`));
    const decisions: Record<string, number> = {};
    for (const b of usage.data) for (const [k, v] of Object.entries(b.decisions as Record<string, number>)) decisions[k] = (decisions[k] ?? 0) + v;
    expect(decisions).toMatchObject({ "allowed:fail-open": 2, allowed: 4 });
    expect(Object.values(decisions).reduce((a, b) => a + b, 0)).toBe(8);
  });
});

describe("a dry-run limit never refuses, not even when its backend is down and it fails closed", () => {
  const down = { backend: "upstash", upstash: { urlFromEnv: "UPSTASH_DOWN_URL", tokenFromEnv: "UPSTASH_TEST_TOKEN", prefix: "pctest" } } as const;
  const quotaName = unique("dry-quota");
  const rateName = unique("dry-rl");
  const call = testGateway({
    plugins: [audit({ sink: "d1", flushIntervalMs: 20 }), keyAuth()],
    routes: [
      // A quota fails closed by default; a rate limit told to.
      { name: "dq", path: "/dq/*", methods: ["GET"], upstream: "echo", plugins: [quota({ name: quotaName, limit: 5, dryRun: true, ...down })] },
      { name: "dr", path: "/dr/*", methods: ["GET"], upstream: "echo", plugins: [rateLimit({ name: rateName, limit: 5, dryRun: true, failMode: "closed", ...down })] },
    ],
  });

  it.each([
    ["dq", () => quotaName, "quota", "5;w=2592000"],
    ["dr", () => rateName, "rate", "5;w=60"],
  ])("/%s: admitted and forwarded, reported as what it would have done (503 LIMITER_UNAVAILABLE)", async (route, name, kind, policy) => {
    const { key } = await seedCaller();
    const marker = unique(`dry-${route}`);
    const res = await call(`/${route}/${marker}`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(200);
    expect((await originRecords(marker)).length).toBe(1);
    expect(res.headers.get("ratelimit-dry-run")).toBe(`would-refuse; limit="${name()}"; code=LIMITER_UNAVAILABLE`);
    // As when failing open: which limit applies, nothing guessed about what is left.
    expect(res.headers.get("ratelimit-limit")).toBe("5");
    expect(res.headers.get("ratelimit-policy")).toBe(policy);
    expect(res.headers.get("ratelimit-remaining")).toBeNull();
    const [event] = await eventsFor(marker, 1);
    expect(event).toMatchObject({ decision: "allowed", status: 200 });
    expect(JSON.parse(event!.limit_state)).toEqual([{ name: name(), kind, outcome: "dry-run-refused", limit: 5, remaining: null, source: "config" }]);
  });
});
