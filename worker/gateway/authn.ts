import type { Context } from "hono";
import { AUDIT_BAG } from "../audit/options";
import type { GatewayEnv } from "../env";
import { GatewayError } from "../errors";
import { ipAllowed } from "../lib/cidr";
import type { ResolvedIdentity } from "../services/identity";

/**
 * How an authenticator plugin (key-auth, jwt-auth, or your own with `traits.authenticator`)
 * takes part when a route runs more than one of them. The rule, in chain order:
 *
 * 1. An earlier authenticator already set `c.get("identity")` → this one only strips its own
 *    credential headers and passes (`alreadyAuthenticated`).
 * 2. The request carries a credential of this authenticator's kind → it verifies it; a bad
 *    credential is refused at once (never handed on to the next authenticator).
 * 3. No credential of its kind → it passes to the next authenticator, unless it is the last
 *    one on the route (`isLastAuthenticator`); the last one refuses with 401.
 *
 * So either credential satisfies the route, an invalid one never falls through, and a route
 * with authenticators can never be reached anonymously.
 */
export const alreadyAuthenticated = (c: Context<GatewayEnv>): boolean => c.get("identity") !== undefined;

/** True when no authenticator follows `name` in this route's chain (or the route lists none, e.g. a bare test app). */
export function isLastAuthenticator(c: Context<GatewayEnv>, name: string): boolean {
  const list = c.get("route")?.authenticators ?? [];
  const at = list.indexOf(name);
  return at === -1 || at === list.length - 1;
}

/** The detail every refused caller gets: it names what the route accepts, nothing about why. */
export function credentialRequiredDetail(c: Context<GatewayEnv>): string {
  const list = c.get("route")?.authenticators ?? [];
  const kinds = list.map((n) => (n === "key-auth" ? "API key" : n === "jwt-auth" ? "bearer token (JWT)" : `${n} credential`));
  return kinds.length > 1 ? `A valid ${kinds.join(" or ")} is required.` : kinds.length === 1 ? `A valid ${kinds[0]} is required.` : "Valid credentials are required.";
}

/** Requests whose proxy user's allowlist an authenticator has applied (or skipped on purpose). */
export const userIpsDecided = new WeakSet<object>();

/**
 * The proxy user's own `allowedIps`, applied by the authenticator that accepted its credential
 * (key-auth, jwt-auth: `enforceIpAllowlist`, default true) before it sets the identity, so the
 * list holds on every route that accepts the user's credentials, `authorize` or not. Call it only
 * for a user with a list (test `allowedIps` for null first: a user without one costs no more).
 * A client IP (CF-Connecting-IP) outside every entry, or none, is 403 FORBIDDEN; the refusal is
 * audited with the user and key (`reason: ip_not_allowed`), not as a use of the key.
 */
export function checkUserIps(c: Context<GatewayEnv>, identity: ResolvedIdentity, enforce: boolean): void {
  userIpsDecided.add(c);
  const ips = identity.user.allowedIps!;
  const ip = c.get("clientIp");
  if (!enforce || ips.length === 0 || (ip && ipAllowed(ip, ips))) return;
  const bag = c.get("bag");
  bag.set(AUDIT_BAG.reason, "ip_not_allowed");
  bag.set(AUDIT_BAG.subject, { keyId: identity.key.id, userId: identity.user.id });
  throw new GatewayError("FORBIDDEN", "Requests from this address are not allowed for this proxy user.");
}
