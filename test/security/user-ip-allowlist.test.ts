import { env } from "cloudflare:test";
import { SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { authorize } from "../../plugins/authorize";
import { jwtAuth } from "../../plugins/jwt-auth";
import { keyAuth } from "../../plugins/key-auth";
import { definePlugin, z } from "../../worker/plugin-api";
import { expectProblem, originRecords, seedCaller, testGateway, unique } from "../helpers";

/**
 * A proxy user's own `allowedIps` holds wherever its credentials are accepted: the authenticator
 * that accepts them (key-auth, jwt-auth) refuses a client IP outside the list, with or without
 * `authorize` on the route. Before, only `authorize` checked it, so a route with an authenticator
 * and no `authorize` took the user's keys and tokens from any address.
 */
const jwt = () => jwtAuth({ algorithms: ["HS256"], secretFromEnv: "JWT_HS_SECRET" });

/** An authenticator of one's own that does not apply the user's list: `authorize` still does. */
let customIdentityOf: { id: string; name: string } | undefined;
const custom = definePlugin({
  name: "custom-auth",
  config: z.strictObject({}),
  traits: { authenticator: true },
  create: () => async (c, next) => {
    const u = customIdentityOf!;
    c.set("identity", {
      authMethod: "api-key",
      user: { id: u.id, name: u.name, group: null, status: "active", expiresAt: null, allowedIps: ["192.0.2.0/24"] },
      key: { id: "key_custom", name: null, start: "", expiresAt: null, revokedAt: null, permissions: null },
      roles: [],
      permissions: ["echo:read"],
    });
    await next();
  },
});

const call = testGateway({
  routes: [
    { name: "ip-key", path: "/ip-key/*", upstream: "echo", plugins: [keyAuth()] },
    { name: "ip-jwt", path: "/ip-jwt/*", upstream: "echo", plugins: [jwt()] },
    { name: "ip-both", path: "/ip-both/*", upstream: "echo", plugins: [keyAuth(), jwt()] },
    { name: "ip-authz", path: "/ip-authz/*", upstream: "echo", permission: "echo:read", plugins: [keyAuth(), authorize()] },
    { name: "ip-lax", path: "/ip-lax/*", upstream: "echo", plugins: [keyAuth({ enforceIpAllowlist: false }), jwtAuth({ algorithms: ["HS256"], secretFromEnv: "JWT_HS_SECRET", enforceIpAllowlist: false })] },
    { name: "ip-custom", path: "/ip-custom/*", upstream: "echo", permission: "echo:read", plugins: [custom(), authorize()] },
  ],
});

let listed: Awaited<ReturnType<typeof seedCaller>>;
let open: Awaited<ReturnType<typeof seedCaller>>;
let listedToken = "";
beforeAll(async () => {
  listed = await seedCaller({ permissions: ["echo:read"], allowedIps: ["192.0.2.0/24", "2001:db8:abcd::/48"] });
  open = await seedCaller({ permissions: ["echo:read"] });
  listedToken = await new SignJWT({ sub: listed.user.id }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("5m").sign(new TextEncoder().encode(env.JWT_HS_SECRET));
  customIdentityOf = listed.user;
});

const viaKey = (key: string) => ({ "x-api-key": key });
const viaToken = (token: string) => ({ authorization: `Bearer ${token}` });

/** Calls `route` from `ip` (none: no CF-Connecting-IP) and returns the answer and what the origin got. */
async function from(route: string, headers: Record<string, string>, ip?: string) {
  const marker = unique("uip");
  const res = await call(`/${route}/${marker}`, { headers, ...(ip ? { ip } : {}) });
  return { res, records: await originRecords(marker) };
}

async function expectRefused(route: string, headers: Record<string, string>, ip?: string) {
  const { res, records } = await from(route, headers, ip);
  const problem = await expectProblem(res, 403, "FORBIDDEN");
  expect(problem.detail).toBe("Requests from this address are not allowed for this proxy user.");
  expect(records).toEqual([]);
}

async function expectForwarded(route: string, headers: Record<string, string>, ip?: string) {
  const { res, records } = await from(route, headers, ip);
  expect(res.status).toBe(200);
  expect(records).toHaveLength(1);
}

describe("a proxy user's allowedIps, enforced by the authenticator", () => {
  it("key-auth without authorize: a key from outside the user's list is 403 and reaches no origin", async () => {
    await expectForwarded("ip-key", viaKey(listed.key), "192.0.2.10");
    await expectForwarded("ip-key", viaKey(listed.key), "2001:db8:abcd:1::5");
    await expectRefused("ip-key", viaKey(listed.key), "198.51.100.7");
    await expectRefused("ip-key", viaKey(listed.key), "2001:db8:abce::1");
    // No client IP at all fails closed; X-Forwarded-For is never believed.
    await expectRefused("ip-key", viaKey(listed.key));
    await expectRefused("ip-key", { ...viaKey(listed.key), "x-forwarded-for": "192.0.2.10" });
    // A user without a list is not affected.
    await expectForwarded("ip-key", viaKey(open.key), "198.51.100.7");
  });

  it("jwt-auth without authorize: a token of that user from outside its list is 403 and reaches no origin", async () => {
    await expectForwarded("ip-jwt", viaToken(listedToken), "192.0.2.10");
    await expectRefused("ip-jwt", viaToken(listedToken), "198.51.100.7");
    await expectRefused("ip-jwt", viaToken(listedToken));
  });

  it("with both authenticators on one route, either credential is held to the list", async () => {
    await expectRefused("ip-both", viaKey(listed.key), "198.51.100.7");
    await expectRefused("ip-both", viaToken(listedToken), "198.51.100.7");
    await expectForwarded("ip-both", viaToken(listedToken), "192.0.2.10");
  });

  it("with authorize, the answer is the same 403 (given by the authenticator)", async () => {
    await expectRefused("ip-authz", viaKey(listed.key), "198.51.100.7");
    await expectForwarded("ip-authz", viaKey(listed.key), "192.0.2.10");
  });

  it("a revoked key from outside the list is still the one 401 for bad keys, not a 403 that tells it apart", async () => {
    const gone = await seedCaller({ allowedIps: ["192.0.2.0/24"] });
    const res = await call(`/admin/v1/keys/${gone.keyId}/revoke`, { method: "POST", headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` } });
    expect(res.status).toBe(200);
    const { res: refused, records } = await from("ip-key", viaKey(gone.key), "198.51.100.7");
    await expectProblem(refused, 401, "KEY_INVALID");
    expect(records).toEqual([]);
  });

  it("enforceIpAllowlist: false on the authenticator lets a route ignore the user's list", async () => {
    await expectForwarded("ip-lax", viaKey(listed.key), "198.51.100.7");
    await expectForwarded("ip-lax", viaToken(listedToken), "198.51.100.7");
  });

  it("an authenticator of one's own that does not apply the list: authorize still does", async () => {
    await expectRefused("ip-custom", {}, "198.51.100.7");
    await expectForwarded("ip-custom", {}, "192.0.2.10");
  });
});
