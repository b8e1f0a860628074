import { alreadyAuthenticated, checkUserIps, credentialRequiredDetail, definePlugin, GatewayError, isLastAuthenticator, waitUntil, z } from "../../worker/plugin-api";
import { AUDIT_BAG } from "../../worker/audit/options";
import { KEY_PREFIX } from "../../worker/lib/api-key";
import { recordKeyUse, resolveApiKey } from "../../worker/services/identity";

/** The one body every refused key gets, whatever the reason, so callers learn nothing about keys. */
export const KEY_INVALID_DETAIL = "A valid API key is required.";

export const keyAuthOptions = z.strictObject({
  headers: z
    .array(z.enum(["authorization", "x-api-key"]))
    .min(1)
    .default(["authorization", "x-api-key"])
    .describe("Where the key may be presented: `Authorization: Bearer <key>` and/or `X-API-Key: <key>`"),
  hideCredentials: z.boolean().default(true).describe("Remove the key's headers before forwarding (the origin never sees the key)"),
  enforceIpAllowlist: z
    .boolean()
    .default(true)
    .describe("Refuse (403) a client IP outside the proxy user's own `allowedIps`; false: ignore them on this route"),
});
export type KeyAuthOptions = z.input<typeof keyAuthOptions>;

/**
 * Reads the presented key; two different keys at once (or a duplicated header) are refused as
 * malformed. With `onlyOurs` (another authenticator follows), an `Authorization: Bearer` value
 * that is not key-shaped (no `pcl_` prefix, e.g. a JWT) is left for that authenticator.
 */
function presentedKey(headers: Headers, fromAuthorization: boolean, fromXApiKey: boolean, onlyOurs: boolean): string | undefined | null {
  let found: string | undefined;
  if (fromAuthorization) {
    const auth = headers.get("authorization");
    if (auth !== null) {
      const m = BEARER.exec(auth.trim());
      if (m && m[1]!.startsWith(KEY_PREFIX)) found = m[1]!;
      else if (!onlyOurs) return null;
    }
  }
  if (fromXApiKey) {
    const k = headers.get("x-api-key");
    if (k !== null) {
      const key = k.trim();
      if (found !== undefined && found !== key) return null;
      found = key;
    }
  }
  return found;
}

const BEARER = /^Bearer ([^\s,]+)$/i;
const BEARER_KEY = /^Bearer pcl_/i;

/**
 * Authenticates the caller by proxy-user API key. The key is checked for shape and checksum
 * first (no I/O), then resolved through the isolate cache, then D1. Every failure gives the
 * same 401 body; the reason is logged with the request id (never the key). A user's own
 * `allowedIps` is enforced here (403), on every route that accepts its keys. Next to jwt-auth on
 * one route, either credential satisfies it (see docs/plugins.md, "Several authenticators").
 *
 * @example plugins: [keyAuth(), authorize()]
 * @example keyAuth({ headers: ["x-api-key"] }) // only X-API-Key
 * @example keyAuth({ enforceIpAllowlist: false }) // a route that ignores the users' own allowedIps
 */
export const keyAuth = definePlugin({
  name: "key-auth",
  config: keyAuthOptions,
  traits: { authenticator: true, leavesIdentityHeaders: true },
  create: ({ headers: sources, hideCredentials, enforceIpAllowlist }) => {
    const fromAuthorization = sources.includes("authorization");
    const fromXApiKey = sources.includes("x-api-key");
    return async function keyAuth(c, next) {
      const last = isLastAuthenticator(c, "key-auth");
      const authenticated = alreadyAuthenticated(c);
      const requestHeaders = c.req.raw.headers;
      const key = authenticated ? undefined : presentedKey(requestHeaders, fromAuthorization, fromXApiKey, !last);
      // Strip before anything can fail or pass: the origin never sees a client key either way.
      if (hideCredentials) {
        const upstreamHeaders = c.get("upstreamHeaders");
        if (fromXApiKey) upstreamHeaders.delete("x-api-key");
        if (fromAuthorization && (last || key !== undefined || BEARER_KEY.test(requestHeaders.get("authorization")?.trim() ?? ""))) upstreamHeaders.delete("authorization");
        // A proxy key in a header this route does not read is a live credential all the same:
        // whoever runs the origin could call the gateway with it. Other values there pass.
        if (!fromXApiKey && requestHeaders.get("x-api-key")?.trim().startsWith(KEY_PREFIX)) upstreamHeaders.delete("x-api-key");
        if (!fromAuthorization && BEARER_KEY.test(requestHeaders.get("authorization")?.trim() ?? "")) upstreamHeaders.delete("authorization");
      }
      if (authenticated || (key === undefined && !last)) return next();
      const { db, keyCache, env } = c.get("services");
      const result =
        key === null
          ? ({ ok: false, reason: "malformed" } as const)
          : await resolveApiKey(db, keyCache, key, { ttlMs: env.KEY_CACHE_TTL_SECONDS * 1000, negativeTtlMs: env.KEY_NEGATIVE_CACHE_TTL_SECONDS * 1000 });
      if (!result.ok) {
        console.log(
          JSON.stringify({
            level: "info",
            msg: "key refused",
            requestId: c.get("requestId"),
            route: c.get("route").name,
            reason: result.reason,
            ...("keyId" in result ? { keyId: result.keyId, userId: result.userId } : {}),
          }),
        );
        c.get("bag").set(AUDIT_BAG.reason, result.reason);
        if ("keyId" in result) c.get("bag").set(AUDIT_BAG.subject, { keyId: result.keyId, userId: result.userId });
        const detail = result.reason === "missing" ? credentialRequiredDetail(c) : KEY_INVALID_DETAIL;
        throw new GatewayError("KEY_INVALID", detail, { headers: { "www-authenticate": 'Bearer realm="portcullis"' } });
      }
      if (result.identity.user.allowedIps) checkUserIps(c, result.identity, enforceIpAllowlist);
      c.set("identity", result.identity);
      // With the audit plugin in the chain, last_used_at comes from the audit trail (batched);
      // without it, a throttled direct write (at most once a minute per key per isolate).
      if (!c.get("bag").get(AUDIT_BAG.active)) {
        const write = recordKeyUse(db, result.identity.key.id);
        if (write) waitUntil(c, write);
      }
      await next();
    };
  },
});
