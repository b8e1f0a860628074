import { beforeEach, describe, expect, it } from "vitest";
import { audit } from "../../plugins/audit";
import { authorize } from "../../plugins/authorize";
import { keyAuth } from "../../plugins/key-auth";
import { quota } from "../../plugins/quota";
import { rateLimit } from "../../plugins/rate-limit";
import { testUpstreams } from "../fixtures/upstreams";
import { eventsFor } from "../audit-helpers";
import { ADMIN, expectProblem, json, originRecords, seedCaller, testGateway, unique } from "../helpers";
import { clearOfHourEdge } from "../window-edges";

/**
 * "A refused request never reaches the origin and never consumes quota beyond what it was
 * charged" (issue #4). A quota placed before `authorize` admits a request, spending a token, before
 * authorize refuses it: the quota gives that token back (to the isolate's live lease: no round
 * trip), so only requests that reach the origin are charged. A rate limit in the same place keeps
 * counting refused requests: it is there against floods and guessing.
 */
const N = 3;
const viaBridge = { backend: "upstash", upstash: { urlFromEnv: "UPSTASH_TEST_URL", tokenFromEnv: "UPSTASH_TEST_TOKEN", prefix: "pctest" } } as const;

beforeEach(() => clearOfHourEdge(20_000), 30_000);

describe.each([
  ["durable-object", {}],
  ["upstash", viaBridge],
] as const)("a quota in front of authorize (%s)", (_backend, backendOptions) => {
  const quotaName = unique("refund");
  const rateName = unique("refund-rl");
  const call = testGateway({
    upstreams: {
      ...testUpstreams,
      dead: { url: "http://127.0.0.1:9" },
      // Its credential's variable is not set: the forwarder refuses (500) before sending anything.
      nocred: { ...testUpstreams.echo, credential: { header: "Authorization", prefix: "Bearer ", fromEnv: "NO_SUCH_ORIGIN_TOKEN" } },
    },
    plugins: [audit({ sink: "d1", flushIntervalMs: 20 }), keyAuth(), quota({ name: quotaName, limit: N, period: "day", ...backendOptions }), authorize()],
    routes: [
      { name: "ok", path: "/ok/*", methods: ["GET"], upstream: "echo", permission: "echo:read" },
      { name: "no", path: "/no/*", methods: ["GET"], upstream: "echo", permission: "echo:admin" },
      { name: "dead", path: "/dead/*", methods: ["GET"], upstream: "dead", permission: "echo:read" },
      { name: "nocred", path: "/nocred/*", methods: ["GET"], upstream: "nocred", permission: "echo:read" },
      // A rate limit in the same place: before authorize.
      {
        name: "rl",
        path: "/rl/*",
        methods: ["GET"],
        upstream: "echo",
        permission: "echo:admin",
        disablePlugins: ["quota", "authorize"],
        plugins: [rateLimit({ name: rateName, limit: 2, window: "1h", ...backendOptions }), authorize()],
      },
    ],
  });
  const auth = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
  const status = async (userId: string) => {
    const res = await call(`/admin/v1/users/${userId}/limits/status`, { headers: ADMIN });
    expect(res.status).toBe(200);
    const limit = (await json(res)).limits.find((l: { name: string }) => l.name === quotaName);
    return { used: limit.used as number, remaining: limit.remaining as number };
  };

  it("requests authorize refuses are not charged: N allowed requests still reach the origin, the N+1th is 429 QUOTA_EXCEEDED", async () => {
    const { user, key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("refund");
    // More refusals than the quota holds: were they charged, the last would be the quota's 429.
    const refused = [];
    for (let i = 0; i <= N; i++) refused.push(await call(`/no/${marker}/refused${i}`, auth(key)));
    // Each refused response already counts its token as back.
    expect(refused.map((r) => [r.status, r.headers.get("ratelimit-remaining")])).toEqual(refused.map(() => [403, String(N)]));
    for (const res of refused) await expectProblem(res, 403, "FORBIDDEN");
    // The token given back is held by this isolate (the one answering the admin call too): the
    // backend still counts it, the status does not — nothing was charged.
    expect(await status(user.id)).toEqual({ used: 0, remaining: N });

    for (let i = 0; i < N; i++) {
      const res = await call(`/ok/${marker}/ok${i}`, auth(key));
      expect(res.status).toBe(200);
      expect(res.headers.get("ratelimit-remaining")).toBe(String(N - 1 - i));
      expect(await status(user.id)).toEqual({ used: i + 1, remaining: N - 1 - i });
    }
    const over = await call(`/ok/${marker}/over`, auth(key));
    await expectProblem(over, 429, "QUOTA_EXCEEDED");
    expect(await status(user.id)).toEqual({ used: N, remaining: 0 });

    // The audit trail says the same as the headers: the refused requests' events show the budget
    // with their token back (N), not the pre-refund figure (N - 1); the allowed ones count down.
    const events = new Map((await eventsFor(marker, 2 * N + 2)).map((e) => [new URL(e.path, "http://o").pathname.split("/").pop(), e]));
    const quotaState = (name: string) => JSON.parse(events.get(name)!.limit_state).find((l: { name: string }) => l.name === quotaName);
    for (let i = 0; i <= N; i++) expect(quotaState(`refused${i}`)).toMatchObject({ outcome: "allowed", limit: N, remaining: N });
    for (let i = 0; i < N; i++) expect(quotaState(`ok${i}`)).toMatchObject({ outcome: "allowed", remaining: N - 1 - i });
    expect(quotaState("over")).toMatchObject({ outcome: "refused", remaining: 0 });

    // The origin saw exactly the N allowed requests: none refused, not the one over quota.
    const seen = (await originRecords(marker)).map((r) => new URL(r.url, "http://o").pathname.split("/").pop()).sort();
    expect(seen).toEqual(Array.from({ length: N }, (_, i) => `ok${i}`));
  });

  it("a request the origin answered stays charged, whatever the status; so does one the origin did not answer", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("charged");
    expect((await call(`/ok/__status/503/${marker}`, auth(key))).status).toBe(503);
    await expectProblem(await call(`/dead/${marker}`, auth(key)), 502, "UPSTREAM_UNAVAILABLE");
    expect((await call(`/ok/${marker}/last`, auth(key))).status).toBe(200);
    await expectProblem(await call(`/ok/${marker}/over`, auth(key)), 429, "QUOTA_EXCEEDED");
    expect((await originRecords(marker)).length).toBe(2);
  });

  it("a request the forwarder refuses before sending it (the upstream's credential is not configured) is not charged", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("nocred");
    for (let i = 0; i <= N; i++) {
      const res = await call(`/nocred/${marker}/${i}`, auth(key));
      expect(res.headers.get("ratelimit-remaining")).toBe(String(N));
      await expectProblem(res, 500, "GATEWAY_MISCONFIGURED");
    }
    expect((await originRecords(marker)).length).toBe(0);
    for (let i = 0; i < N; i++) expect((await call(`/ok/${marker}/ok${i}`, auth(key))).status).toBe(200);
    await expectProblem(await call(`/ok/${marker}/over`, auth(key)), 429, "QUOTA_EXCEEDED");
  });

  it("a rate limit in the same place keeps counting refused requests (flood and brute-force protection)", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("rl-refused");
    for (let i = 0; i < 2; i++) await expectProblem(await call(`/rl/${marker}/${i}`, auth(key)), 403, "FORBIDDEN");
    await expectProblem(await call(`/rl/${marker}/2`, auth(key)), 429, "RATE_LIMITED");
    expect((await originRecords(marker)).length).toBe(0);
  });
});

describe("the status never takes off tokens the backend's answer does not count", () => {
  // LIMITER_SLOW: leases answer after a second; a usage read happens at once, answered a second later.
  const name = unique("refund-slow");
  const call = testGateway({
    plugins: [keyAuth(), quota({ name, limit: 100, period: "day", durableObjectBinding: "LIMITER_SLOW", timeoutMs: 5_000 })],
    routes: [{ name: "q", path: "/q/*", methods: ["GET"], upstream: "echo" }],
  });

  it("a lease that lands while the status reads is not taken off the count it missed", async () => {
    const { user, key } = await seedCaller();
    const auth = { headers: { authorization: `Bearer ${key}` } };
    // One lease of 5 (auto: 100 / 20), all spent here: the backend counts 5, this isolate holds none.
    for (let i = 0; i < 5; i++) expect((await call(`/q/${unique("q")}`, auth)).status).toBe(200);
    // A sixth request leases again (a second); the status reads the count (5) meanwhile, and its
    // answer arrives after the new lease's 5 tokens (4 unspent) are held here.
    const sixth = call(`/q/${unique("q")}`, auth);
    await new Promise((r) => setTimeout(r, 200));
    const res = await call(`/admin/v1/users/${user.id}/limits/status`, { headers: ADMIN });
    expect((await sixth).status).toBe(200);
    const status = (await json(res)).limits.find((l: { name: string }) => l.name === name);
    // The count read had 5 requests in it: taking the new lease's 4 off would say 1.
    expect(status).toMatchObject({ used: 5, remaining: 95 });
  });
});
