import { createLocalJWKSet, createRemoteJWKSet, errors as joseErrors, jwksCache, jwtVerify, type JSONWebKeySet, type ExportedJWKSCache, type JWKSCacheInput, type JWTPayload, type JWTVerifyGetKey } from "jose";
import { alreadyAuthenticated, checkUserIps, credentialRequiredDetail, definePlugin, GatewayError, isLastAuthenticator, z } from "../../worker/plugin-api";
import type { GatewayContext, ResolvedIdentity } from "../../worker/plugin-api";
import { AUDIT_BAG } from "../../worker/audit/options";
import { TtlCache } from "../../worker/lib/ttl-cache";
import { identityFailure, identityStoreFailed, loadUserIdentity } from "../../worker/services/identity";

/** The one body every refused token gets, whatever the reason (expired, bad signature, unknown user…). */
export const TOKEN_INVALID_DETAIL = "A valid bearer token is required.";

const ALGORITHMS = ["HS256", "RS256", "ES256"] as const;
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
// JWS compact serialization: three base64url parts. Only such a Bearer value is a JWT to us.
const JWS_COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

const jwksUrl = z
  .url({ protocol: /^https?$/ })
  .refine((u) => {
    const url = new URL(u);
    // Keys fetched over plain HTTP could be swapped in transit; only loopback (tests, local dev) may use it.
    return url.protocol === "https:" || ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
  }, "must be https (http only for localhost)");

const publicJwk = z
  .looseObject({ kty: z.enum(["RSA", "EC"]), kid: z.string().optional() })
  .refine((k) => !("d" in k), "an inline JWK must be a public key (it has a private part `d`)");

export const jwtAuthOptions = z
  .strictObject({
    algorithms: z
      .array(z.enum(ALGORITHMS))
      .min(1)
      .describe("Accepted `alg` values (pinned: `none` and anything unlisted are refused). No default: choose deliberately."),
    jwksUrl: jwksUrl.optional().describe("URL of the issuer's JWKS (e.g. https://issuer.example/.well-known/jwks.json); fetched on first use, then cached"),
    jwks: z
      .strictObject({ keys: z.array(publicJwk).min(1) })
      .optional()
      .describe("Inline public keys (RS256/ES256) as a JWKS, instead of or besides `jwksUrl`"),
    secretFromEnv: z
      .string()
      .regex(ENV_NAME)
      .optional()
      .describe("Worker secret holding the HS256 key (at least 32 bytes). HS256 is only accepted when this is set"),
    jwksCacheSeconds: z.number().int().min(0).max(86_400).default(600).describe("How long fetched JWKS keys are reused before a refetch"),
    jwksCooldownSeconds: z.number().int().min(0).max(3600).default(30).describe("Minimum time between JWKS refetches triggered by an unknown `kid`, and after a failed fetch"),
    issuer: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional().describe("Required `iss` (one or a list); default: not checked"),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional().describe("Required `aud` (one or a list); default: not checked"),
    leewaySeconds: z.number().int().min(0).max(300).default(30).describe("Clock skew tolerated on `exp` and `nbf`"),
    requireExp: z.boolean().default(true).describe("Refuse tokens without `exp`"),
    maxTokenAgeSeconds: z.number().int().positive().optional().describe("When set, refuse tokens whose `iat` is older than this"),
    userClaim: z.string().min(1).default("sub").describe("Claim naming the proxy user the token acts as"),
    userLookup: z.enum(["id", "name"]).default("id").describe("Whether `userClaim` holds the proxy user's id (`usr_…`) or its name"),
    scopeClaim: z
      .string()
      .min(1)
      .optional()
      .describe("Claim with permissions (space-separated string or array) that narrow the user's roles, like a key's scope; default: no narrowing"),
    userCacheSeconds: z.number().int().min(0).max(60).default(5).describe("How long a looked-up proxy user is reused in an isolate"),
    verifiedCacheSeconds: z
      .number()
      .int()
      .min(0)
      .max(300)
      .default(60)
      .describe("How long an isolate reuses a token it has verified (never past its `exp` or `maxTokenAgeSeconds`); 0 verifies every request"),
    hideCredentials: z.boolean().default(true).describe("Remove the Authorization header before forwarding"),
    enforceIpAllowlist: z
      .boolean()
      .default(true)
      .describe("Refuse (403) a client IP outside the proxy user's own `allowedIps`; false: ignore them on this route"),
  })
  .superRefine((o, ctx) => {
    const asymmetric = o.algorithms.some((a) => a !== "HS256");
    if (o.algorithms.includes("HS256") && !o.secretFromEnv) ctx.addIssue({ code: "custom", path: ["secretFromEnv"], message: "required when algorithms include HS256" });
    if (!o.algorithms.includes("HS256") && o.secretFromEnv) ctx.addIssue({ code: "custom", path: ["secretFromEnv"], message: "set, but HS256 is not in algorithms" });
    if (asymmetric && !o.jwksUrl && !o.jwks) ctx.addIssue({ code: "custom", path: ["jwksUrl"], message: "RS256/ES256 need `jwksUrl` or inline `jwks`" });
    if (!asymmetric && (o.jwksUrl || o.jwks)) ctx.addIssue({ code: "custom", path: ["algorithms"], message: "keys are configured but only HS256 is accepted" });
  });
export type JwtAuthOptions = z.input<typeof jwtAuthOptions>;

type UserPart = Omit<ResolvedIdentity, "key" | "authMethod">;

/** Longer tokens are verified on every request rather than kept (see `verified` below). */
const MAX_REUSED_TOKEN = 4096;
const userCache = new TtlCache<UserPart | null>();

/** `scope`-style claim → permission list; undefined when the claim is absent. */
function scopeOf(payload: JWTPayload, claim: string | undefined): string[] | null {
  if (!claim) return null;
  const v = payload[claim];
  if (typeof v === "string") return v.split(" ").filter(Boolean);
  if (Array.isArray(v) && v.every((s) => typeof s === "string")) return v as string[];
  // A configured scope claim that is missing or malformed grants nothing, never everything.
  return [];
}

function refuse(c: GatewayContext, reason: string, detail = TOKEN_INVALID_DETAIL, userId?: string): never {
  console.log(JSON.stringify({ level: "info", msg: "token refused", requestId: c.get("requestId"), route: c.get("route")?.name, reason, ...(userId ? { userId } : {}) }));
  // For the audit trail (if the audit plugin runs): why, and who when the token named a real user.
  c.get("bag").set(AUDIT_BAG.reason, reason);
  if (userId) c.get("bag").set(AUDIT_BAG.subject, { userId });
  throw new GatewayError("TOKEN_INVALID", detail, { headers: { "www-authenticate": 'Bearer realm="portcullis", error="invalid_token"' } });
}

/** Failures to get the JWKS (network, timeout, not a 200, not a key set), as opposed to a token's own faults. */
const JWKS_UNREACHABLE = new Set(["ERR_JOSE_GENERIC", "ERR_JWKS_TIMEOUT", "ERR_JWKS_INVALID"]);
const jwksUnreachable = (err: unknown) => err instanceof TypeError || (err instanceof joseErrors.JOSEError && JWKS_UNREACHABLE.has(err.code));

/**
 * The issuer's JWKS from `url`, kept usable through the issuer's outages. jose refetches once
 * the keys are older than `cacheMs` and, if that fails, refuses every token, although the keys
 * it already had still verify them; on Workers each request then starts its own refetch (and
 * waits up to its 5 s timeout). Here a failed fetch falls back to the keys of the last good
 * one, and for `cooldownMs` after it no request refetches. Serving those keys is no weaker than
 * before: a key leaves the set only through a fetch that succeeds, and that fetch replaces
 * them. With no keys ever fetched, the token cannot be checked: 503, not a 401 that tells the
 * client to drop a token nobody looked at.
 */
function resilientRemoteJwks(url: string, cacheMs: number, cooldownMs: number): JWTVerifyGetKey {
  // jose writes every successful fetch here ({ jwks, uat }); the fallback reads it.
  const lastGood: Partial<ExportedJWKSCache> = {};
  const remote = createRemoteJWKSet(new URL(url), { cacheMaxAge: cacheMs, cooldownDuration: cooldownMs, timeoutDuration: 5000, [jwksCache]: lastGood as JWKSCacheInput });
  let fallback: { uat: number; getKey: JWTVerifyGetKey } | undefined;
  let failedAt = -Infinity;
  const lastGoodKeys = (): JWTVerifyGetKey | undefined => {
    const { jwks, uat } = lastGood;
    if (!jwks || uat === undefined) return undefined;
    if (fallback?.uat !== uat) fallback = { uat, getKey: createLocalJWKSet(jwks) };
    return fallback.getKey;
  };
  return async (header, token) => {
    const recent = Date.now() - failedAt < cooldownMs ? lastGoodKeys() : undefined;
    if (recent) return recent(header, token);
    try {
      return await remote(header, token);
    } catch (err) {
      if (!jwksUnreachable(err)) throw err;
      failedAt = Date.now();
      const keys = lastGoodKeys();
      console.error(JSON.stringify({ level: "warn", msg: "jwks fetch failed", jwksUrl: url, usingLastFetched: keys !== undefined, error: String(err) }));
      if (keys) return keys(header, token);
      throw new GatewayError("IDENTITY_UNAVAILABLE", "Credentials cannot be checked right now; retry shortly.", {
        headers: { "retry-after": String(Math.max(1, Math.ceil(cooldownMs / 1000))) },
      });
    }
  };
}

/**
 * Authenticates callers by JWT (`Authorization: Bearer <jwt>`) and maps a claim to a proxy
 * user, so the user's roles, group, IP allowlist, limits and audit apply exactly as for key
 * callers. Signatures are checked with jose against pinned algorithms: HS256 only with a key
 * from a Worker secret, RS256/ES256 only with public keys (inline or a cached JWKS URL), so an
 * RS-signed key can never be replayed as an HMAC secret. `exp`/`nbf` get `leewaySeconds`.
 * Next to key-auth on one route, either credential satisfies it.
 *
 * @example
 * jwtAuth({ algorithms: ["RS256"], jwksUrl: "https://login.example/.well-known/jwks.json", issuer: "https://login.example/", audience: "orders-api" })
 * @example
 * jwtAuth({ algorithms: ["HS256"], secretFromEnv: "PARTNER_JWT_SECRET", userClaim: "client_id", userLookup: "name" })
 */
export const jwtAuth = definePlugin({
  name: "jwt-auth",
  config: jwtAuthOptions,
  traits: { authenticator: true, leavesIdentityHeaders: true },
  create: (o) => {
    // Built once per config load: the remote set keeps its fetched keys for jwksCacheSeconds.
    const remote = o.jwksUrl ? resilientRemoteJwks(o.jwksUrl, o.jwksCacheSeconds * 1000, o.jwksCooldownSeconds * 1000) : undefined;
    const local = o.jwks ? createLocalJWKSet(o.jwks as JSONWebKeySet) : undefined;
    // The HMAC key imported once per isolate (bindings are one object for its life): handed raw
    // bytes, jose would `importKey` them again on every verification.
    const hmacKeys = new WeakMap<object, Promise<CryptoKey>>();

    const keyFor = (env: Record<string, unknown>): JWTVerifyGetKey => async (header, token) => {
      // jose checks `algorithms` before asking for a key; this guard keeps the pinning true even if
      // that order ever changed (an unlisted alg must be a 401, never a key lookup).
      if (!(o.algorithms as readonly string[]).includes(header.alg ?? "")) throw new joseErrors.JOSEAlgNotAllowed(`"alg" (Algorithm) Header Parameter value not allowed`);
      if (header.alg === "HS256") {
        let key = hmacKeys.get(env);
        if (!key) {
          const secret = env[o.secretFromEnv!];
          const bytes = typeof secret === "string" ? new TextEncoder().encode(secret) : undefined;
          if (!bytes || bytes.length < 32) {
            throw new GatewayError("GATEWAY_MISCONFIGURED", `jwt-auth: ${o.secretFromEnv} is missing or shorter than 32 bytes.`);
          }
          // Verify-only and not extractable: the imported key can check signatures, never make them.
          hmacKeys.set(env, (key = crypto.subtle.importKey("raw", bytes, { name: "HMAC", hash: "SHA-256" }, false, ["verify"])));
        }
        return key;
      }
      // Asymmetric: inline keys first, then the issuer's JWKS. Neither ever yields an HMAC key.
      if (local) {
        try {
          return await local(header, token);
        } catch (err) {
          if (!remote) throw err;
        }
      }
      return remote!(header, token);
    };

    // Tokens jose has verified, with their payload. The same bytes verify the same way against
    // the same keys and claim rules, so only time can change the answer, and only towards
    // refusal (`exp`, the token age; `nbf` only ever turns valid): an entry lasts until the first
    // of those instants, at most verifiedCacheSeconds. A failed token is never kept. Purged with
    // the isolate's other caches on admin changes. An entry holds the bindings it was verified
    // with (one object per isolate) and is only used with those: a new HS256 secret is a new env.
    // Bounded in memory (an isolate has 128 MB): at most 5,000 tokens of up to 4 KB each.
    const verified = new TtlCache<{ payload: JWTPayload; env: object }>(5_000);
    const reusableFor = (p: JWTPayload, now: number): number => {
      let until = now + o.verifiedCacheSeconds * 1000;
      // jose refuses once floor(now / 1000) >= exp + leeway, or > iat + maxTokenAge + leeway: stop before either.
      if (typeof p.exp === "number") until = Math.min(until, (p.exp + o.leewaySeconds) * 1000);
      if (o.maxTokenAgeSeconds && typeof p.iat === "number") until = Math.min(until, (p.iat + o.maxTokenAgeSeconds + o.leewaySeconds) * 1000);
      return until - now;
    };

    /** jose's full check (signature, pinned algorithm, claims); a token that passes is kept in `verified`. */
    const rules = {
      algorithms: [...o.algorithms],
      issuer: o.issuer,
      audience: o.audience,
      clockTolerance: o.leewaySeconds,
      requiredClaims: o.requireExp ? ["exp"] : [],
      ...(o.maxTokenAgeSeconds ? { maxTokenAge: o.maxTokenAgeSeconds } : {}),
    };
    const verify = async (token: string, env: Record<string, unknown>): Promise<JWTPayload> => {
      const readAt = verified.generation;
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, keyFor(env), rules));
      } catch (err) {
        if (!(err instanceof joseErrors.JWKSMultipleMatchingKeys)) throw err;
        payload = await verifyWithEach(token, err);
      }
      const now = Date.now();
      if (token.length <= MAX_REUSED_TOKEN) verified.set(token, { payload, env }, reusableFor(payload, now), now, readAt);
      return payload;
    };

    /**
     * A token without `kid` that fits several keys of the set (two inline keys without kids, a
     * JWKS publishing the old and the new key during a rotation): jose hands back the candidates
     * and leaves trying them to the caller. Only a bad signature moves on to the next key; a claim
     * that fails (expired, wrong audience) fails the same with any key, so it is final.
     */
    const verifyWithEach = async (token: string, candidates: joseErrors.JWKSMultipleMatchingKeys): Promise<JWTPayload> => {
      for await (const key of candidates) {
        try {
          return (await jwtVerify(token, key, rules)).payload;
        } catch (err) {
          if (!(err instanceof joseErrors.JWSSignatureVerificationFailed)) throw err;
        }
      }
      throw new joseErrors.JWSSignatureVerificationFailed();
    };

    return async function jwtAuth(c, next) {
      const last = isLastAuthenticator(c, "jwt-auth");
      const auth = c.req.header("authorization")?.trim();
      const m = auth ? /^Bearer (\S+)$/i.exec(auth) : null;
      const token = m && JWS_COMPACT.test(m[1]!) ? m[1]! : undefined;
      if (o.hideCredentials && (token || last || alreadyAuthenticated(c))) c.get("upstreamHeaders").delete("authorization");
      if (alreadyAuthenticated(c)) return next();
      if (!token) {
        if (!last) return next();
        refuse(c, auth ? "malformed" : "missing", auth ? TOKEN_INVALID_DETAIL : credentialRequiredDetail(c));
      }

      const hit = verified.get(token);
      let payload = hit?.env === c.env ? hit.payload : undefined;
      if (!payload) {
        try {
          payload = await verify(token, c.env);
        } catch (err) {
          // Also the JWKS being unreachable with no keys to fall back on (503, logged where it failed).
          if (err instanceof GatewayError) throw err;
          refuse(c, err instanceof joseErrors.JOSEError ? err.code : "verify_failed");
        }
      }

      const subject = payload[o.userClaim];
      if (typeof subject !== "string" || subject === "") refuse(c, "no_user_claim");
      const cacheKey = `${o.userLookup}:${subject}`;
      let user = userCache.get(cacheKey);
      if (user === undefined) {
        const readAt = userCache.generation;
        try {
          user = await loadUserIdentity(c.get("services").db, o.userLookup, subject);
        } catch (err) {
          // Fail closed, as key-auth does: a verified token whose user cannot be loaded is refused.
          throw identityStoreFailed(err, "jwt user lookup failed", [subject]);
        }
        // Not cached when an admin change purged the cache while the read was out.
        userCache.set(cacheKey, user, (user ? o.userCacheSeconds : Math.min(o.userCacheSeconds, 2)) * 1000, Date.now(), readAt);
      }
      if (!user) refuse(c, "unknown_user");
      const identity: ResolvedIdentity = {
        ...user,
        authMethod: "jwt",
        key: {
          // A JWT caller has no key. Its "key" id is stable per proxy user (never per token, never
          // shared between users), so per-key limits and audit group a user's tokens together.
          id: `jwt:${user.user.id}`,
          name: typeof payload.iss === "string" ? payload.iss.slice(0, 200) : null,
          start: "",
          expiresAt: typeof payload.exp === "number" ? payload.exp * 1000 + o.leewaySeconds * 1000 : null,
          revokedAt: null,
          permissions: scopeOf(payload, o.scopeClaim),
        },
      };
      const failure = identityFailure(identity, Date.now());
      if (failure) refuse(c, failure, TOKEN_INVALID_DETAIL, identity.user.id);
      if (identity.user.allowedIps) checkUserIps(c, identity, o.enforceIpAllowlist);
      c.set("identity", identity);
      await next();
    };
  },
});
