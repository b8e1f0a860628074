import { z } from "@hono/zod-openapi";
import { GatewayError } from "../../worker/errors";
import { definePlugin } from "../../worker/gateway/plugin";
import { ipAllowed } from "../../worker/lib/cidr";
import { isPermitted } from "../../worker/lib/permissions";
import { KEY_INVALID_DETAIL } from "../key-auth";

export const authorizeOptions = z.strictObject({
  groups: z
    .array(z.string().min(1))
    .min(1)
    .optional()
    .describe("When set, only proxy users in one of these groups may call the route (e.g. [\"internal\"])"),
  enforceIpAllowlist: z.boolean().default(true).describe("Refuse callers whose client IP is outside their user's `allowedIps`"),
});
export type AuthorizeOptions = z.input<typeof authorizeOptions>;

/**
 * Checks that the authenticated proxy user may call this route: its roles (narrowed by the
 * key's scope) must grant the route's `permission`; its group must be allowed; its client IP
 * must be inside its allowlist. Fails closed: with no identity (no auth plugin ran) it refuses.
 *
 * @example plugins: [keyAuth(), authorize()]
 * @example routes: [{ …, permission: "admin:read", plugins: [authorize({ groups: ["internal"] })] }]
 */
export const authorize = definePlugin({
  name: "authorize",
  config: authorizeOptions,
  create: ({ groups, enforceIpAllowlist }) =>
    async function authorize(c, next) {
      const { identity, route, clientIp } = c.var;
      if (!identity) throw new GatewayError("KEY_INVALID", KEY_INVALID_DETAIL);
      const required = route.permission;
      if (!required || !isPermitted(identity.permissions, identity.key.permissions, required)) {
        throw new GatewayError("FORBIDDEN", required ? `This key does not grant "${required}".` : "This route has no permission configured.");
      }
      if (groups && (identity.user.group === null || !groups.includes(identity.user.group))) {
        throw new GatewayError("FORBIDDEN", "This proxy user's group may not call this route.");
      }
      const allowed = identity.user.allowedIps;
      if (enforceIpAllowlist && allowed && allowed.length > 0 && !(clientIp && ipAllowed(clientIp, allowed))) {
        throw new GatewayError("FORBIDDEN", "Requests from this address are not allowed for this proxy user.");
      }
      await next();
    },
});
