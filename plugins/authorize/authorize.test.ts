import { env } from "cloudflare:test";
import { createApp } from "../../worker/app";
import { defineGateway } from "../../worker/gateway/config";
import { definePlugin, z } from "../../worker/plugin-api";
import { describe, expect, it } from "vitest";
import { expectProblem, originRecords, seedCaller, testGateway, unique } from "../../test/helpers";
import { keyAuth } from "../key-auth";
import { authorize } from "./index";

const fetchGw = testGateway({
  plugins: [keyAuth(), authorize()],
  routes: [
    { name: "az-one", path: "/az-one/*", upstream: "echo", permission: "orders:read" },
    { name: "az-any", path: "/az-any/*", upstream: "echo", permission: { anyOf: ["orders:read", "orders:audit"] } },
    { name: "az-all", path: "/az-all/*", upstream: "echo", permission: { allOf: ["orders:read", "orders:refund"] } },
    { name: "az-group", path: "/az-group/*", upstream: "echo", permission: "orders:read", plugins: [authorize({ groups: ["internal", "ops"] })] },
    { name: "az-net", path: "/az-net/*", upstream: "echo", permission: "orders:read", plugins: [authorize({ allowedIps: ["10.0.0.0/8", "2001:db8::/32"] })] },
    { name: "az-noip", path: "/az-noip/*", upstream: "echo", permission: "orders:read", plugins: [keyAuth({ enforceIpAllowlist: false })] },
  ],
});

async function call(path: string, key: string, ip?: string) {
  const marker = unique("az");
  const res = await fetchGw(`${path}/${marker}`, { headers: { "x-api-key": key }, ...(ip ? { ip } : {}) });
  return { res, reached: (await originRecords(marker)).length > 0 };
}

async function expectForbidden(path: string, key: string, ip?: string) {
  const { res, reached } = await call(path, key, ip);
  await expectProblem(res, 403, "FORBIDDEN");
  expect(reached).toBe(false);
}

describe("authorize", () => {
  it("a wildcard role grants a literal permission; a key scope narrows it", async () => {
    const { key } = await seedCaller({ permissions: ["orders:*"] });
    expect((await call("/az-one", key)).res.status).toBe(200);
    const scoped = await seedCaller({ permissions: ["orders:*"], keyPermissions: ["orders:audit"] });
    await expectForbidden("/az-one", scoped.key);
  });

  it("anyOf: one granted permission suffices", async () => {
    const { key } = await seedCaller({ permissions: ["orders:audit"] });
    expect((await call("/az-any", key)).res.status).toBe(200);
    const none = await seedCaller({ permissions: ["billing:read"] });
    const { res } = await call("/az-any", none.key);
    const body = await expectProblem(res, 403, "FORBIDDEN");
    expect(body.detail).toContain('any of "orders:read", "orders:audit"');
  });

  it("allOf: every permission is required, and the problem names the missing ones", async () => {
    const both = await seedCaller({ permissions: ["orders:read", "orders:refund"] });
    expect((await call("/az-all", both.key)).res.status).toBe(200);
    const one = await seedCaller({ permissions: ["orders:read"] });
    const { res, reached } = await call("/az-all", one.key);
    const body = await expectProblem(res, 403, "FORBIDDEN");
    expect(body.detail).toBe('This key does not grant "orders:refund".');
    expect(reached).toBe(false);
  });

  it("groups: only listed groups pass; a user without a group is refused", async () => {
    expect((await call("/az-group", (await seedCaller({ permissions: ["orders:read"], group: "ops" })).key)).res.status).toBe(200);
    await expectForbidden("/az-group", (await seedCaller({ permissions: ["orders:read"], group: "partner" })).key);
    await expectForbidden("/az-group", (await seedCaller({ permissions: ["orders:read"] })).key);
  });

  it("the proxy user's own allowlist is enforced on CF-Connecting-IP, IPv4 and IPv6", async () => {
    const { key } = await seedCaller({ permissions: ["orders:read"], allowedIps: ["192.0.2.0/24", "2001:db8:abcd::/48"] });
    expect((await call("/az-one", key, "192.0.2.77")).res.status).toBe(200);
    expect((await call("/az-one", key, "2001:db8:abcd:12::1")).res.status).toBe(200);
    expect((await call("/az-one", key, "::ffff:192.0.2.5")).res.status).toBe(200);
    await expectForbidden("/az-one", key, "192.0.3.1");
    await expectForbidden("/az-one", key, "2001:db8:abce::1");
    // No client IP at all (no CF-Connecting-IP) fails closed.
    await expectForbidden("/az-one", key);
    // X-Forwarded-For is never believed.
    const marker = unique("az-xff");
    await expectProblem(await fetchGw(`/az-one/${marker}`, { headers: { "x-api-key": key, "x-forwarded-for": "192.0.2.77" } }), 403, "FORBIDDEN");
    // keyAuth({ enforceIpAllowlist: false }) lets the route ignore the user's list.
    expect((await call("/az-noip", key, "198.51.100.1")).res.status).toBe(200);
  });

  it("allowedIps: the route's network allowlist applies to every caller", async () => {
    const { key } = await seedCaller({ permissions: ["orders:read"] });
    expect((await call("/az-net", key, "10.1.2.3")).res.status).toBe(200);
    expect((await call("/az-net", key, "2001:db8::5")).res.status).toBe(200);
    await expectForbidden("/az-net", key, "11.0.0.1");
    await expectForbidden("/az-net", key, "2001:db9::1");
  });

  it("refuses invalid CIDRs at config load", () => {
    expect(authorize({ allowedIps: ["10.0.0.0/33"] }).configIssues?.[0]?.path).toEqual(["allowedIps", 0]);
    expect(authorize({ allowedIps: ["not-an-ip"] }).configIssues).toHaveLength(1);
  });
});

// ── from the core suite: a tiny gateway per case, via app.request ──
const gateway = (routes: Parameters<typeof defineGateway>[0]["routes"], plugins = [keyAuth(), authorize()]) => {
  const app = createApp(defineGateway({ upstreams: { echo: { url: env.TEST_ORIGIN_URL } }, plugins, routes }));
  return (path: string, headers: Record<string, string> = {}) => app.request(`https://gw.test${path}`, { headers }, env);
};

describe("authorize plugin", () => {
  it("fails closed when no auth plugin identified the caller", async () => {
    // A chain with no authenticator before authorize no longer loads at all…
    expect(() => gateway([{ name: "open", path: "/open/*", upstream: "echo", permission: "echo:read", disablePlugins: ["key-auth"] }])).toThrow(
      /route "open"\): authorize runs before any authenticator/,
    );
    // …so exercise the runtime guard with an authenticator that lets everyone through unidentified.
    const careless = definePlugin({ name: "careless-auth", config: z.strictObject({}), traits: { authenticator: true }, create: () => async (_c, next) => next() });
    const call = gateway([{ name: "open", path: "/open/*", upstream: "echo", permission: "echo:read" }], [careless(), authorize()]);
    const m = unique("az");
    await expectProblem(await call(`/open/${m}`), 401, "KEY_INVALID");
    expect(await originRecords(m)).toHaveLength(0);
  });

  it("groups: only listed groups pass; users without a group are refused", async () => {
    const call = gateway([{ name: "g", path: "/g/*", upstream: "echo", permission: "echo:read", plugins: [authorize({ groups: ["internal", "ops"] })] }]);
    const ops = await seedCaller({ group: "ops" });
    const none = await seedCaller();
    expect((await call(`/g/${unique("az")}`, { "x-api-key": ops.key })).status).toBe(200);
    await expectProblem(await call(`/g/${unique("az")}`, { "x-api-key": none.key }), 403, "FORBIDDEN");
  });

  it("keyAuth({ enforceIpAllowlist: false }) lets a route ignore the user's allowlist; authorize's old option is refused at load", async () => {
    const call = gateway([
      { name: "strict", path: "/strict/*", upstream: "echo", permission: "echo:read" },
      { name: "lax", path: "/lax/*", upstream: "echo", permission: "echo:read", plugins: [keyAuth({ enforceIpAllowlist: false })] },
    ]);
    for (const value of [false, true]) {
      expect(() => gateway([{ name: "old", path: "/old/*", upstream: "echo", permission: "echo:read", plugins: [authorize({ enforceIpAllowlist: value } as never)] }])).toThrow(
        /routes\[0\]\.plugins\[0\]\.enforceIpAllowlist \(route "old", plugin "authorize"\): moved to the authenticators.*keyAuth\(\{ enforceIpAllowlist: false \}\)/,
      );
    }
    const { key } = await seedCaller({ allowedIps: ["192.0.2.0/24"] });
    const from = { "x-api-key": key, "cf-connecting-ip": "198.51.100.1" };
    await expectProblem(await call(`/strict/${unique("az")}`, from), 403, "FORBIDDEN");
    expect((await call(`/lax/${unique("az")}`, from)).status).toBe(200);
  });

  it("says which permission was missing", async () => {
    const call = gateway([{ name: "w", path: "/w/*", upstream: "echo", permission: "echo:write" }]);
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const problem = await expectProblem(await call(`/w/${unique("az")}`, { "x-api-key": key }), 403, "FORBIDDEN");
    expect(problem.detail).toBe('This key does not grant "echo:write".');
  });
});
