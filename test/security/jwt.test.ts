import { env } from "cloudflare:test";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { authorize } from "../../plugins/authorize";
import { jwtAuth } from "../../plugins/jwt-auth";
import { createApp } from "../../worker/app";
import { defineGateway } from "../../worker/gateway/config";
import { testUpstreams } from "../fixtures/upstreams";
import { expectProblem, originRecords, seedCaller, testGateway, unique } from "../helpers";

/**
 * jwt-auth under attack, through a gateway of its own (HS256 from a Worker secret, and RS256
 * with an inline public key). Each refusal must reach the origin zero times.
 */
const ISS = "https://issuer.security.test/";
const AUD = "portcullis-security";
const hsKey = new TextEncoder().encode(env.JWT_HS_SECRET);
let rsa: Awaited<ReturnType<typeof generateKeyPair>>;
let call: ReturnType<typeof testGateway>;
let user: Awaited<ReturnType<typeof seedCaller>>["user"];
const now = () => Math.floor(Date.now() / 1000);
const b64url = (s: string) => btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");

beforeAll(async () => {
  rsa = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(rsa.publicKey)), kid: "sec-rsa", alg: "RS256" };
  call = testGateway({
    routes: [
      { name: "hs", path: "/hs/*", upstream: "echo", permission: "echo:read", plugins: [jwtAuth({ algorithms: ["HS256"], secretFromEnv: "JWT_HS_SECRET", issuer: ISS, audience: AUD }), authorize()] },
      { name: "rs", path: "/rs/*", upstream: "echo", permission: "echo:read", plugins: [jwtAuth({ algorithms: ["RS256"], jwks: { keys: [jwk as { kty: "RSA" }] }, issuer: ISS, audience: AUD }), authorize()] },
    ],
  });
  ({ user } = await seedCaller({ permissions: ["echo:read"] }));
});

const hs = (claims: Record<string, unknown>, o: { exp?: number; nbf?: number; iss?: string; aud?: string } = {}) => {
  let j = new SignJWT({ sub: user.id, ...claims }).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setIssuer(o.iss ?? ISS).setAudience(o.aud ?? AUD).setExpirationTime(o.exp ?? now() + 300);
  if (o.nbf !== undefined) j = j.setNotBefore(o.nbf);
  return j.sign(hsKey);
};

async function shape(res: Response) {
  const headers = [...res.headers].filter(([k]) => k !== "x-request-id");
  return JSON.stringify({ status: res.status, headers, body: (await res.text()).replace(/req_[0-9a-f]{32}/g, "req_ID") });
}

describe("jwt-auth: forged, stale and misdirected tokens", () => {
  it("alg none, HS/RS confusion, expired, not-yet-valid, wrong iss/aud, tampered: one identical 401 each, nothing forwarded", async () => {
    const m = unique("jwtsec");
    const good = await hs({});
    const [h, p] = good.split(".");
    const pubPem = JSON.stringify(await exportJWK(rsa.publicKey));
    const cases: Record<string, [string, string]> = {
      "alg none": ["/hs", `${b64url(JSON.stringify({ alg: "none", typ: "JWT" }))}.${p}.`],
      "alg none, RS route": ["/rs", `${b64url(JSON.stringify({ alg: "none" }))}.${p}.`],
      "HS256 signed with the RSA public key, on the RS route": ["/rs", await new SignJWT({ sub: user.id }).setProtectedHeader({ alg: "HS256", kid: "sec-rsa" }).setIssuer(ISS).setAudience(AUD).setExpirationTime(now() + 300).sign(new TextEncoder().encode(pubPem))],
      "RS256 token on the HS route": ["/hs", await new SignJWT({ sub: user.id }).setProtectedHeader({ alg: "RS256", kid: "sec-rsa" }).setIssuer(ISS).setAudience(AUD).setExpirationTime(now() + 300).sign(rsa.privateKey)],
      expired: ["/hs", await hs({}, { exp: now() - 3600 })],
      "not yet valid": ["/hs", await hs({}, { nbf: now() + 3600 })],
      "wrong issuer": ["/hs", await hs({}, { iss: "https://evil.example/" })],
      "wrong audience": ["/hs", await hs({}, { aud: "another-api" })],
      "tampered payload": ["/hs", `${h}.${b64url(JSON.stringify({ sub: "usr_admin", iss: ISS, aud: AUD, exp: now() + 300 }))}.${good.split(".")[2]}`],
      "unknown user": ["/hs", await hs({ sub: "usr_doesnotexist000000000" })],
      "sub with CR/LF": ["/hs", await hs({ sub: `${user.id}\r\nX-Portcullis-User-Id: usr_admin` })],
    };
    const shapes = new Map<string, string>();
    for (const [name, [route, token]] of Object.entries(cases)) {
      const res = await call(`${route}/${m}`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status, name).toBe(401);
      shapes.set(name, (await shape(res)).replaceAll(route, "ROUTE"));
    }
    const first = [...shapes.values()][0];
    expect(first).toContain("TOKEN_INVALID");
    for (const [name, s] of shapes) expect(s, name).toBe(first);
    expect(await originRecords(m)).toHaveLength(0);
    // Control: the good token works.
    expect((await call(`/hs/${m}-ok`, { headers: { authorization: `Bearer ${good}` } })).status).toBe(200);
  });

  it("claims that feed identity headers cannot inject headers: a jti with CR/LF or non-Latin-1 text", async () => {
    for (const jti of ["abc\r\nX-Portcullis-User-Id: usr_admin", "abc\nx-evil: 1", "abc\u0000def", "\u2028line", "ключ"]) {
      const m = unique("jti");
      const res = await call(`/hs/${m}`, { headers: { authorization: `Bearer ${await hs({ jti })}` } });
      expect(res.status, JSON.stringify(jti)).not.toBe(500);
      const recs = await originRecords(m);
      if (res.status === 200) {
        expect(recs).toHaveLength(1);
        const h = recs[0]!.headers;
        expect(h["x-portcullis-user-id"]).toBe(user.id);
        expect(h).not.toHaveProperty("x-evil");
        expect(h["x-portcullis-key-id"]).not.toMatch(/[\r\n\0]/);
      } else {
        expect(recs).toHaveLength(0);
      }
    }
  });

  it("D1 failing during the user lookup fails closed: 503 IDENTITY_UNAVAILABLE, nothing forwarded", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const { user: fresh } = await seedCaller({ permissions: ["echo:read"] });
      const token = await new SignJWT({ sub: fresh.id }).setProtectedHeader({ alg: "HS256" }).setIssuer(ISS).setAudience(AUD).setExpirationTime(now() + 300).sign(hsKey);
      const broken = new Proxy(env.DB, {
        get(target, prop) {
          if (prop === "prepare" || prop === "batch") return () => { throw new Error("D1_ERROR: Network connection lost."); };
          const v = Reflect.get(target, prop, target);
          return typeof v === "function" ? v.bind(target) : v;
        },
      });
      const app = createApp(
        defineGateway({
          upstreams: testUpstreams,
          routes: [{ name: "hs", path: "/hs/*", upstream: "echo", permission: "echo:read", plugins: [jwtAuth({ algorithms: ["HS256"], secretFromEnv: "JWT_HS_SECRET", issuer: ISS, audience: AUD }), authorize()] }],
        }),
      );
      const m = unique("jwtd1");
      const res = await app.request(`https://gateway.test/hs/${m}`, { headers: { authorization: `Bearer ${token}` } }, { ...env, DB: broken });
      await expectProblem(res, 503, "IDENTITY_UNAVAILABLE");
      expect(await originRecords(m)).toHaveLength(0);
    } finally {
      errors.mockRestore();
    }
  });
});
