import { env } from "cloudflare:test";
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from "jose";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { ADMIN, admin, expectProblem, json, originRecords, seedCaller, testGateway, unique } from "../../test/helpers";
import { eventsFor } from "../../test/audit-helpers";
import { audit } from "../audit";
import { authorize } from "../authorize";
import { keyAuth } from "../key-auth";
import { jwtAuth } from "./index";

const ISS = "https://issuer.test/";
const AUD = "portcullis-tests";
const jwksName = unique("jwks").replace(/[^\w-]/g, "");
const jwksUrl = `${env.TEST_ORIGIN_URL}/__jwks/${jwksName}`;

let rsa: { privateKey: CryptoKey; publicKey: CryptoKey };
let ec: { privateKey: CryptoKey; publicKey: CryptoKey };
let inlineEc: { privateKey: CryptoKey; publicKey: CryptoKey };
let inlineJwk: JWK;

beforeAll(async () => {
  rsa = await generateKeyPair("RS256", { extractable: true });
  ec = await generateKeyPair("ES256", { extractable: true });
  inlineEc = await generateKeyPair("ES256", { extractable: true });
  const keys = [
    { ...(await exportJWK(rsa.publicKey)), kid: "rsa-1", alg: "RS256", use: "sig" },
    { ...(await exportJWK(ec.publicKey)), kid: "ec-1", alg: "ES256", use: "sig" },
  ];
  const put = await fetch(jwksUrl, { method: "PUT", body: JSON.stringify({ keys }) });
  expect(put.status).toBe(204);
  inlineJwk = { ...(await exportJWK(inlineEc.publicKey)), kid: "inline-1" };
});

const now = () => Math.floor(Date.now() / 1000);

async function sign(
  claims: Record<string, unknown>,
  opts: { alg?: "RS256" | "ES256" | "HS256"; kid?: string; key?: CryptoKey | Uint8Array; exp?: number | null; nbf?: number; iss?: string; aud?: string } = {},
) {
  const alg = opts.alg ?? "RS256";
  const key = opts.key ?? (alg === "RS256" ? rsa.privateKey : alg === "ES256" ? ec.privateKey : new TextEncoder().encode(env.JWT_HS_SECRET));
  let jwt = new SignJWT(claims).setProtectedHeader({ alg, ...(opts.kid !== undefined ? { kid: opts.kid } : alg === "RS256" ? { kid: "rsa-1" } : alg === "ES256" ? { kid: "ec-1" } : {}) }).setIssuedAt();
  jwt = jwt.setIssuer(opts.iss ?? ISS).setAudience(opts.aud ?? AUD);
  if (opts.exp !== null) jwt = jwt.setExpirationTime(opts.exp ?? now() + 300);
  if (opts.nbf !== undefined) jwt = jwt.setNotBefore(opts.nbf);
  return jwt.sign(key);
}

const b64url = (s: string) => btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");

const rsAuth = () => jwtAuth({ algorithms: ["RS256", "ES256"], jwksUrl, issuer: ISS, audience: AUD, leewaySeconds: 30 });
const fetchGw = testGateway({
  plugins: [keyAuth(), rsAuth(), authorize()],
  routes: [
    { name: "jwt-both", path: "/jwt-both/*", upstream: "echo", permission: "echo:read" },
    { name: "jwt-only", path: "/jwt-only/*", upstream: "echo", permission: "echo:read", disablePlugins: ["key-auth"] },
    {
      name: "jwt-hs",
      path: "/jwt-hs/*",
      upstream: "echo",
      permission: "echo:read",
      disablePlugins: ["key-auth"],
      plugins: [jwtAuth({ algorithms: ["HS256"], secretFromEnv: "JWT_HS_SECRET", userClaim: "client_id", userLookup: "name", scopeClaim: "scope", issuer: ISS })],
    },
  ],
});

// The inline route is built after beforeAll has the key: a gateway of its own.
let inlineGw: ReturnType<typeof testGateway>;
beforeAll(() => {
  inlineGw = testGateway({
    plugins: [jwtAuth({ algorithms: ["ES256"], jwks: { keys: [inlineJwk as { kty: "EC" }] }, requireExp: false }), authorize()],
    routes: [{ name: "jwt-inline", path: "/jwt-inline/*", upstream: "echo", permission: "echo:read" }],
  });
});

async function expectRefused(path: string, headers: Record<string, string>, code = "TOKEN_INVALID", gw = fetchGw) {
  const marker = unique("jwt-no");
  const res = await gw(`${path}/${marker}`, { headers });
  const body = await expectProblem(res, 401, code);
  expect(await originRecords(marker)).toEqual([]);
  return { res, body };
}

describe("jwt-auth", () => {
  it("accepts RS256 and ES256 tokens from the JWKS URL and acts as the mapped proxy user", async () => {
    const { user } = await seedCaller({ permissions: ["echo:read"], group: "partner" });
    for (const alg of ["RS256", "ES256"] as const) {
      const token = await sign({ sub: user.id, jti: "t-1" }, { alg });
      const marker = unique("jwt-ok");
      const res = await fetchGw(`/jwt-only/${marker}`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      const [rec] = await originRecords(marker);
      expect(rec!.headers["x-portcullis-user-id"]).toBe(user.id);
      expect(rec!.headers["x-portcullis-user-group"]).toBe("partner");
      expect(rec!.headers["x-portcullis-key-id"]).toBe(`jwt:${user.id}`);
      // The client's token is not forwarded; the origin gets its own credential.
      expect(rec!.headers.authorization).toBe("Bearer origin-secret-value-7f3a9c");
      expect(JSON.stringify(rec)).not.toContain(token);
    }
  });

  it("caches the JWKS: many requests, one fetch", async () => {
    const { user } = await seedCaller({ permissions: ["echo:read"] });
    for (let i = 0; i < 4; i++) {
      const token = await sign({ sub: user.id });
      expect((await fetchGw(`/jwt-only/${unique("jwks-cache")}`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    }
    const fetches = (await originRecords(`/__jwks/${jwksName}`)).filter((r) => r.method === "GET");
    expect(fetches.length).toBe(1);
  });

  it("checks exp and nbf with leeway, iss and aud", async () => {
    const { user } = await seedCaller({ permissions: ["echo:read"] });
    const ok = async (token: string) => (await fetchGw(`/jwt-only/${unique("m")}`, { headers: { authorization: `Bearer ${token}` } })).status;
    expect(await ok(await sign({ sub: user.id }, { exp: now() - 10 }))).toBe(200); // inside 30 s leeway
    expect(await ok(await sign({ sub: user.id }, { nbf: now() + 10 }))).toBe(200);
    await expectRefused("/jwt-only", { authorization: `Bearer ${await sign({ sub: user.id }, { exp: now() - 120 })}` });
    await expectRefused("/jwt-only", { authorization: `Bearer ${await sign({ sub: user.id }, { nbf: now() + 120 })}` });
    await expectRefused("/jwt-only", { authorization: `Bearer ${await sign({ sub: user.id }, { exp: null })}` });
    await expectRefused("/jwt-only", { authorization: `Bearer ${await sign({ sub: user.id }, { iss: "https://evil.test/" })}` });
    const { body } = await expectRefused("/jwt-only", { authorization: `Bearer ${await sign({ sub: user.id }, { aud: "other-api" })}` });
    expect(body.detail).toBe("A valid bearer token is required.");
  });

  it("pins algorithms: alg none, HS256-with-the-public-key and tampered tokens are refused", async () => {
    const { user } = await seedCaller({ permissions: ["echo:read"] });
    const claims = b64url(JSON.stringify({ sub: user.id, iss: ISS, aud: AUD, exp: now() + 300 }));
    await expectRefused("/jwt-only", { authorization: `Bearer ${b64url(JSON.stringify({ alg: "none" }))}.${claims}.` });
    // The classic confusion: sign HS256 with the RSA public key's bytes.
    const pub = new TextEncoder().encode(JSON.stringify(await exportJWK(rsa.publicKey)));
    await expectRefused("/jwt-only", { authorization: `Bearer ${await sign({ sub: user.id }, { alg: "HS256", key: pub, kid: "rsa-1" })}` });
    // An RS256 token on the HS256-only route, and an HS256 token on the RS-only route.
    await expectRefused("/jwt-hs", { authorization: `Bearer ${await sign({ client_id: user.name })}` });
    await expectRefused("/jwt-only", { authorization: `Bearer ${await sign({ sub: user.id }, { alg: "HS256" })}` });
    const good = await sign({ sub: user.id });
    const [h, p, s] = good.split(".");
    await expectRefused("/jwt-only", { authorization: `Bearer ${h}.${p}.${s!.slice(0, -4)}AAAA` });
    const forged = b64url(JSON.stringify({ sub: "usr_someone_else", iss: ISS, aud: AUD, exp: now() + 300 }));
    await expectRefused("/jwt-only", { authorization: `Bearer ${h}.${forged}.${s}` });
  });

  it("HS256 with a secret from a Worker secret, user by name, scope narrowing the roles", async () => {
    const { user } = await seedCaller({ permissions: ["echo:*"] });
    const marker = unique("jwt-hs");
    const scoped = await sign({ client_id: user.name, scope: "echo:read other:thing" }, { alg: "HS256" });
    expect((await fetchGw(`/jwt-hs/${marker}`, { headers: { authorization: `Bearer ${scoped}` } })).status).toBe(200);
    expect((await originRecords(marker))[0]!.headers["x-portcullis-user-id"]).toBe(user.id);
    const narrow = await sign({ client_id: user.name, scope: "echo:write" }, { alg: "HS256" });
    const res = await fetchGw(`/jwt-hs/${unique("m")}`, { headers: { authorization: `Bearer ${narrow}` } });
    await expectProblem(res, 403, "FORBIDDEN");
    // A configured scope claim that is missing grants nothing.
    await expectProblem(await fetchGw(`/jwt-hs/${unique("m")}`, { headers: { authorization: `Bearer ${await sign({ client_id: user.name }, { alg: "HS256" })}` } }), 403, "FORBIDDEN");
  });

  it("HS256: a secret shorter than 32 bytes is a 500 GATEWAY_MISCONFIGURED that never reaches the origin; the imported key verifies every later token and only those", async () => {
    const hs = (secretFromEnv: string, bindings: Record<string, unknown>) =>
      testGateway(
        { plugins: [jwtAuth({ algorithms: ["HS256"], secretFromEnv, userClaim: "client_id", userLookup: "name", issuer: ISS }), authorize()], routes: [{ name: "hs-own", path: "/hs-own/*", upstream: "echo", permission: "echo:read" }] },
        bindings,
      );
    const { user } = await seedCaller({ permissions: ["echo:read"] });
    const short = "only-31-bytes-of-secret-0123456";
    const shortGw = hs("SHORT_JWT_SECRET", { SHORT_JWT_SECRET: short });
    const marker = unique("hs-short");
    const token = await sign({ client_id: user.name }, { alg: "HS256", key: new TextEncoder().encode(short) });
    const res = await shortGw(`/hs-own/${marker}`, { headers: { authorization: `Bearer ${token}` } });
    const body = await expectProblem(res, 500, "GATEWAY_MISCONFIGURED");
    expect(JSON.stringify(body)).not.toContain(short);
    expect(await originRecords(marker)).toHaveLength(0);

    // A good secret: imported once, then every token signed with it passes and a token signed
    // with another secret of the same length fails, however many came before.
    const secret = "a-32-byte-or-longer-secret-for-hs256-tests";
    const okGw = hs("OWN_JWT_SECRET", { OWN_JWT_SECRET: secret });
    const other = new TextEncoder().encode(secret.replace("a-32", "b-32"));
    for (let i = 0; i < 3; i++) {
      const good = await sign({ client_id: user.name, n: i }, { alg: "HS256", key: new TextEncoder().encode(secret) });
      expect((await okGw(`/hs-own/${unique("m")}`, { headers: { authorization: `Bearer ${good}` } })).status).toBe(200);
      const forged = await sign({ client_id: user.name, n: i }, { alg: "HS256", key: other });
      await expectProblem(await okGw(`/hs-own/${unique("m")}`, { headers: { authorization: `Bearer ${forged}` } }), 401, "TOKEN_INVALID");
    }
  });

  describe("verified tokens reused in the isolate", () => {
    const secret = "another-32-byte-or-longer-secret-for-reuse";
    const key = new TextEncoder().encode(secret);
    const gwWith = (opts: { verifiedCacheSeconds?: number; maxTokenAgeSeconds?: number }) =>
      testGateway(
        { plugins: [jwtAuth({ algorithms: ["HS256"], secretFromEnv: "REUSE_JWT_SECRET", userClaim: "client_id", userLookup: "name", issuer: ISS, leewaySeconds: 0, ...opts }), authorize()], routes: [{ name: "reuse", path: "/reuse/*", upstream: "echo", permission: "echo:read" }] },
        { REUSE_JWT_SECRET: secret },
      );
    /** Signature checks the runtime performs while `run` goes. */
    async function verifications(run: () => Promise<void>): Promise<number> {
      const spy = vi.spyOn(crypto.subtle, "verify");
      try {
        await run();
        return spy.mock.calls.length;
      } finally {
        spy.mockRestore();
      }
    }
    const call = async (gw: ReturnType<typeof testGateway>, token: string) => (await gw(`/reuse/${unique("m")}`, { headers: { authorization: `Bearer ${token}` } })).status;

    it("a token is verified once and then reused, and verified every time with verifiedCacheSeconds: 0; a different token is verified on its own", async () => {
      const { user } = await seedCaller({ permissions: ["echo:read"] });
      const token = await sign({ client_id: user.name }, { alg: "HS256", key });
      const reusing = gwWith({});
      expect(await verifications(async () => { for (let i = 0; i < 4; i++) expect(await call(reusing, token)).toBe(200); })).toBe(1);
      const other = await sign({ client_id: user.name, n: 2 }, { alg: "HS256", key });
      expect(await verifications(async () => expect(await call(reusing, other)).toBe(200))).toBe(1);
      // A forged token is refused every time: failures are never kept.
      const forged = `${token.slice(0, token.lastIndexOf(".") + 1)}${b64url("not-the-signature")}`;
      expect(await verifications(async () => { for (let i = 0; i < 2; i++) expect(await call(reusing, forged)).toBe(401); })).toBe(2);
      // A token over 4 KB is not kept (the cache's memory stays bounded): verified every time.
      const big = await sign({ client_id: user.name, pad: "x".repeat(4_000) }, { alg: "HS256", key });
      expect(big.length).toBeGreaterThan(4096);
      expect(await verifications(async () => { for (let i = 0; i < 2; i++) expect(await call(reusing, big)).toBe(200); })).toBe(2);
      const always = gwWith({ verifiedCacheSeconds: 0 });
      expect(await verifications(async () => { for (let i = 0; i < 3; i++) expect(await call(always, token)).toBe(200); })).toBe(3);
    });

    it("a reused token is still refused the moment it expires, and once it is older than maxTokenAgeSeconds", async () => {
      const { user } = await seedCaller({ permissions: ["echo:read"] });
      const exp = now() + 2;
      const expiring = await sign({ client_id: user.name }, { alg: "HS256", key, exp });
      const reusing = gwWith({});
      expect(await call(reusing, expiring)).toBe(200);
      expect(await verifications(async () => expect(await call(reusing, expiring)).toBe(200))).toBe(0);
      await new Promise((r) => setTimeout(r, Math.max(0, exp * 1000 + 100 - Date.now())));
      expect(await call(reusing, expiring)).toBe(401);

      const aging = gwWith({ maxTokenAgeSeconds: 1 });
      const young = await sign({ client_id: user.name }, { alg: "HS256", key, exp: now() + 300 });
      const iat = now();
      expect(await call(aging, young)).toBe(200);
      await new Promise((r) => setTimeout(r, Math.max(0, (iat + 2) * 1000 + 100 - Date.now())));
      expect(await call(aging, young)).toBe(401);
    });
  });

  it("a token without kid verifies against whichever of several matching keys signed it (two inline keys, or a JWKS mid-rotation)", async () => {
    const first = await generateKeyPair("ES256", { extractable: true });
    const second = await generateKeyPair("ES256", { extractable: true });
    const twoKeys = testGateway({
      // Two partners' keys, neither with a kid: jose finds both for an ES256 token without one.
      plugins: [jwtAuth({ algorithms: ["ES256"], jwks: { keys: [(await exportJWK(first.publicKey)) as { kty: "EC" }, (await exportJWK(second.publicKey)) as { kty: "EC" }] } }), authorize()],
      routes: [{ name: "jwt-two-keys", path: "/jwt-two-keys/*", upstream: "echo", permission: "echo:read" }],
    });
    const { user } = await seedCaller({ permissions: ["echo:read"] });
    // No kid in the header (the shared helper always sets one for ES256).
    const kidless = (key: CryptoKey, exp = now() + 300) => new SignJWT({ sub: user.id }).setProtectedHeader({ alg: "ES256" }).setIssuedAt().setExpirationTime(exp).sign(key);
    for (const signer of [first, second]) {
      const token = await kidless(signer.privateKey);
      expect(JSON.parse(atob(token.split(".")[0]!.replaceAll("-", "+").replaceAll("_", "/")))).not.toHaveProperty("kid");
      expect((await twoKeys(`/jwt-two-keys/${unique("m")}`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    }
    // A key that is neither, and a tampered token, are still refused.
    const stranger = await generateKeyPair("ES256");
    await expectRefused("/jwt-two-keys", { authorization: `Bearer ${await kidless(stranger.privateKey)}` }, "TOKEN_INVALID", twoKeys);
    const good = await kidless(first.privateKey);
    const [h, , sig] = good.split(".");
    await expectRefused("/jwt-two-keys", { authorization: `Bearer ${h}.${b64url(JSON.stringify({ sub: "usr_other", exp: now() + 300 }))}.${sig}` }, "TOKEN_INVALID", twoKeys);
    // Claims still apply once a key matched: an expired token is refused.
    await expectRefused("/jwt-two-keys", { authorization: `Bearer ${await kidless(second.privateKey, now() - 600)}` }, "TOKEN_INVALID", twoKeys);
  });

  it("inline public keys verify without any fetch", async () => {
    const { user } = await seedCaller({ permissions: ["echo:read"] });
    const token = await new SignJWT({ sub: user.id }).setProtectedHeader({ alg: "ES256", kid: "inline-1" }).sign(inlineEc.privateKey);
    expect((await inlineGw(`/jwt-inline/${unique("m")}`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    const other = await new SignJWT({ sub: user.id }).setProtectedHeader({ alg: "ES256", kid: "inline-1" }).sign(ec.privateKey);
    await expectRefused("/jwt-inline", { authorization: `Bearer ${other}` }, "TOKEN_INVALID", inlineGw);
  });

  it("the mapped user's roles, status and existence apply as for key callers", async () => {
    const { user } = await seedCaller({ permissions: ["billing:read"] });
    await expectProblem(await fetchGw(`/jwt-only/${unique("m")}`, { headers: { authorization: `Bearer ${await sign({ sub: user.id })}` } }), 403, "FORBIDDEN");
    await expectRefused("/jwt-only", { authorization: `Bearer ${await sign({ sub: "usr_0000000000000000000000" })}` });
    const disabled = await seedCaller({ permissions: ["echo:read"] });
    expect((await admin("PATCH", `/users/${disabled.user.id}`, { status: "disabled" })).status).toBe(200);
    await expectRefused("/jwt-only", { authorization: `Bearer ${await sign({ sub: disabled.user.id })}` });
  });

  it("with key-auth and jwt-auth on one route, either credential satisfies it; a bad one never falls through", async () => {
    const { user, key } = await seedCaller({ permissions: ["echo:read"] });
    const token = await sign({ sub: user.id });
    expect((await fetchGw(`/jwt-both/${unique("m")}`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    expect((await fetchGw(`/jwt-both/${unique("m")}`, { headers: { "x-api-key": key } })).status).toBe(200);
    const marker = unique("jwt-both");
    expect((await fetchGw(`/jwt-both/${marker}`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await originRecords(marker))[0]!.headers.authorization).toBe("Bearer origin-secret-value-7f3a9c");
    // Both at once: the first authenticator in the chain (key-auth) decides; the JWT is still stripped.
    const both = unique("jwt-both2");
    expect((await fetchGw(`/jwt-both/${both}`, { headers: { "x-api-key": key, authorization: `Bearer ${token}` } })).status).toBe(200);
    expect(JSON.stringify(await originRecords(both))).not.toContain(token);
    const { body } = await expectRefused("/jwt-both", {});
    expect(body.detail).toBe("A valid API key or bearer token (JWT) is required.");
    await expectRefused("/jwt-both", { authorization: "Bearer garbage" });
    await expectRefused("/jwt-both", { authorization: `Bearer ${await sign({ sub: user.id }, { exp: now() - 600 })}` });
    await expectRefused("/jwt-both", { authorization: `Bearer ${key.slice(0, -2)}zz` }, "KEY_INVALID");
    expect(await json(await fetchGw(`/jwt-both/${unique("m")}`, { headers: { authorization: `Bearer ${token}` } }))).toHaveProperty("url");
  });

  it("a JWKS URL that does not answer with keys never lets a token through: 503 IDENTITY_UNAVAILABLE (the token was never checked, so not a 401 telling the client to drop it)", async () => {
    const { user } = await seedCaller({ permissions: ["echo:read"] });
    const broken = testGateway({
      plugins: [jwtAuth({ algorithms: ["RS256"], jwksUrl: `${env.TEST_ORIGIN_URL}/__jwks/${jwksName}-missing` }), authorize()],
      routes: [{ name: "jwt-broken", path: "/jwt-broken/*", upstream: "echo", permission: "echo:read" }],
    });
    const marker = unique("jwt-no-jwks");
    const res = await broken(`/jwt-broken/${marker}`, { headers: { authorization: `Bearer ${await sign({ sub: user.id })}` } });
    await expectProblem(res, 503, "IDENTITY_UNAVAILABLE");
    expect(res.headers.get("retry-after")).toBe("30");
    expect(res.headers.get("www-authenticate")).toBeNull();
    expect(await originRecords(marker)).toEqual([]);
  });

  it("an issuer outage after keys were fetched: tokens signed with those keys still verify, one refetch per cooldown, unknown kids still refused", async () => {
    const name = unique("jwks-outage").replace(/[^\w-]/g, "");
    const url = `${env.TEST_ORIGIN_URL}/__jwks/${name}`;
    const put = (body: string) => fetch(url, { method: "PUT", body });
    expect((await put(JSON.stringify({ keys: [{ ...(await exportJWK(rsa.publicKey)), kid: "rsa-1", alg: "RS256", use: "sig" }] }))).status).toBe(204);
    const outageGw = testGateway({
      // Keys are fresh for 1 s; no verified-token reuse, so every request needs a key.
      plugins: [jwtAuth({ algorithms: ["RS256"], jwksUrl: url, jwksCacheSeconds: 1, jwksCooldownSeconds: 30, verifiedCacheSeconds: 0 }), authorize()],
      routes: [{ name: "jwt-outage", path: "/jwt-outage/*", upstream: "echo", permission: "echo:read" }],
    });
    const { user } = await seedCaller({ permissions: ["echo:read"] });
    const call = async (token: string) => outageGw(`/jwt-outage/${unique("m")}`, { headers: { authorization: `Bearer ${token}` } });
    expect((await call(await sign({ sub: user.id }))).status).toBe(200);
    expect((await put("__down__")).status).toBe(204);
    await new Promise((r) => setTimeout(r, 1_100)); // past jwksCacheSeconds: the next request refetches, and fails
    for (let i = 0; i < 3; i++) expect((await call(await sign({ sub: user.id }))).status).toBe(200);
    const fetches = (await originRecords(`/__jwks/${name}`)).filter((r) => r.method === "GET");
    expect(fetches.length).toBe(2); // the first fetch, then one failed refetch: not one per request
    // A key the gateway never had is still unknown: refused, not let through.
    const other = await generateKeyPair("RS256");
    await expectProblem(await call(await sign({ sub: user.id }, { key: other.privateKey, kid: "rsa-2" })), 401, "TOKEN_INVALID");
  });

  it("JWT callers are audited like key callers: the user, and why a token was refused", async () => {
    const audited = testGateway({
      plugins: [audit({ sink: "d1", flushIntervalMs: 50 }), jwtAuth({ algorithms: ["HS256"], secretFromEnv: "JWT_HS_SECRET" }), authorize()],
      routes: [{ name: "jwt-audited", path: "/jwt-audited/*", upstream: "echo", permission: "echo:read" }],
    });
    const { user } = await seedCaller({ permissions: ["echo:read"], group: "partner" });
    const ok = unique("jwt-audit-ok");
    expect((await audited(`/jwt-audited/${ok}`, { headers: { authorization: `Bearer ${await sign({ sub: user.id }, { alg: "HS256" })}` } })).status).toBe(200);
    const [allowed] = await eventsFor(ok, 1);
    expect(allowed).toMatchObject({ decision: "allowed", user_id: user.id, key_id: `jwt:${user.id}`, group: "partner" });

    // Through this gateway's own admin API, so the change purges the isolate caches it uses.
    const patch = await audited(`/admin/v1/users/${user.id}`, { method: "PATCH", headers: { ...ADMIN, "content-type": "application/json" }, body: JSON.stringify({ status: "disabled" }) });
    expect(patch.status).toBe(200);
    const no = unique("jwt-audit-no");
    await expectProblem(await audited(`/jwt-audited/${no}`, { headers: { authorization: `Bearer ${await sign({ sub: user.id }, { alg: "HS256" })}` } }), 401, "TOKEN_INVALID");
    const [refused] = await eventsFor(no, 1);
    expect(refused).toMatchObject({ decision: "refused", decided_by: "jwt-auth", code: "TOKEN_INVALID", reason: "user_disabled", user_id: user.id });
  });

  it("refuses unsafe options at load", () => {
    const issues = (o: Parameters<typeof jwtAuth>[0]) => jwtAuth(o).configIssues?.map((i) => `${i.path.join(".")}: ${i.message}`) ?? [];
    expect(issues({ algorithms: ["HS256"] })).toEqual(["secretFromEnv: required when algorithms include HS256"]);
    expect(issues({ algorithms: ["RS256"] })[0]).toContain("jwksUrl");
    expect(issues({ algorithms: ["RS256"], jwksUrl: "http://issuer.example/jwks" })[0]).toContain("https");
    // @ts-expect-error "none" is not an accepted algorithm
    expect(issues({ algorithms: ["none"], jwksUrl })[0]).toContain("algorithms");
    expect(issues({ algorithms: ["RS256"], jwks: { keys: [{ kty: "RSA", n: "x", e: "AQAB", d: "secret" }] } })[0]).toContain("private part");
  });
});
