import { checkUserIps, credentialRequiredDetail, definePlugin, GatewayError, ipAllowed, isPermitted, parseCidr, z } from "../../worker/plugin-api";
import type { ResolvedIdentity, RouteAccess } from "../../worker/plugin-api";
// Internal: which requests an authenticator already checked (not part of the plugin API).
import { userIpsDecided } from "../../worker/gateway/authn";

const cidr = z.string().refine((s) => parseCidr(s) !== null, "must be an IPv4 or IPv6 address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)");

export const authorizeOptions = z.strictObject({
  groups: z
    .array(z.string().min(1))
    .min(1)
    .optional()
    .describe("When set, only proxy users in one of these groups may call the route (e.g. [\"internal\"]); default: any group"),
  allowedIps: z
    .array(cidr)
    .min(1)
    .optional()
    .describe("When set, the client IP (CF-Connecting-IP) must be in one of these CIDRs, for every caller; default: any address"),
  // Moved to the authenticators (the user's list now holds wherever its credentials are
  // accepted): refused at load, so a route that switched it off here is not silently enforced.
  enforceIpAllowlist: z
    .undefined("moved to the authenticators, which enforce the user's allowedIps: use keyAuth({ enforceIpAllowlist: false }) / jwtAuth(…) on the route")
    .optional()
    .describe("Removed: see key-auth's and jwt-auth's `enforceIpAllowlist`"),
});
export type AuthorizeOptions = z.input<typeof authorizeOptions>;

/** The permissions of `access` the identity lacks (empty = allowed). */
export function missingPermissions(identity: ResolvedIdentity, access: RouteAccess): string[] {
  const has = (p: string) => isPermitted(identity.permissions, identity.key.permissions, p);
  if ("anyOf" in access) return access.anyOf.some(has) ? [] : [...access.anyOf];
  return access.allOf.filter((p) => !has(p));
}

/**
 * Checks that the authenticated proxy user may call this route: its roles (narrowed by the
 * key's or token's scope) must grant the route's `permission` (one string, `{ anyOf }` or
 * `{ allOf }`); its group must be allowed; its client IP must be inside the route's allowlist.
 * The user's own `allowedIps` is the authenticator's to enforce (key-auth, jwt-auth), here only
 * for an identity no authenticator checked. Fails closed: with no identity it refuses.
 *
 * @example plugins: [keyAuth(), authorize()]
 * @example routes: [{ …, permission: { anyOf: ["admin:read", "audit:read"] }, plugins: [authorize({ groups: ["internal"], allowedIps: ["10.0.0.0/8"] })] }]
 */
export const authorize = definePlugin({
  name: "authorize",
  traits: { leavesIdentityHeaders: true },
  config: authorizeOptions,
  create: ({ groups, allowedIps }) =>
    async function authorize(c, next) {
      const identity = c.get("identity");
      const route = c.get("route");
      const clientIp = c.get("clientIp");
      if (!identity) throw new GatewayError("KEY_INVALID", credentialRequiredDetail(c), { headers: { "www-authenticate": 'Bearer realm="portcullis"' } });
      if (!route.access) throw new GatewayError("FORBIDDEN", "This route has no permission configured.");
      const missing = missingPermissions(identity, route.access);
      if (missing.length > 0) {
        const what = "anyOf" in route.access ? `any of ${missing.map((p) => `"${p}"`).join(", ")}` : missing.map((p) => `"${p}"`).join(", ");
        throw new GatewayError("FORBIDDEN", `This ${identity.authMethod === "jwt" ? "token" : "key"} does not grant ${what}.`);
      }
      if (groups && (identity.user.group === null || !groups.includes(identity.user.group))) {
        throw new GatewayError("FORBIDDEN", "This proxy user's group may not call this route.");
      }
      if (allowedIps && !(clientIp && ipAllowed(clientIp, allowedIps))) {
        throw new GatewayError("FORBIDDEN", "Requests from this address are not allowed on this route.");
      }
      // The user's own list is the authenticator's (key-auth, jwt-auth); checked here only for an
      // identity set by one that did not apply it (a custom authenticator).
      if (identity.user.allowedIps && !userIpsDecided.has(c)) checkUserIps(c, identity, true);
      await next();
    },
});
