import type { Context, Handler, Hono, MiddlewareHandler } from "hono";
import type { GatewayEnv } from "../env";
import { GatewayError } from "../errors";
import { tagDecisions } from "./decider";
import { forwardToUpstream } from "./forward";
import { sanitizeRequestHeaders, sanitizeResponseHeaders } from "./headers";
import type { CompiledGateway, CompiledRoute, CompiledUpstream } from "./types";
import { nonCanonicalReason, rawPathOf } from "./upstream-url";

/**
 * Refuses non-canonical paths before any route matching or authorization, so a request is
 * always authorized on the same path the origin will see.
 */
export const canonicalPath = (): MiddlewareHandler<GatewayEnv> =>
  async function canonicalPath(c, next) {
    const reason = nonCanonicalReason(rawPathOf(c.req.url));
    if (reason) throw new GatewayError("PATH_INVALID", `The request path is not canonical: ${reason}.`);
    await next();
  };

/** A CORS preflight: OPTIONS naming the method the browser wants to send. */
const isPreflight = (c: Context<GatewayEnv>) => c.req.method === "OPTIONS" && c.req.header("origin") !== undefined && c.req.header("access-control-request-method") !== undefined;

/**
 * First handler of a route: the route's context for the plugins, then the method check. The
 * route is set before a 405 so the audit trail can name the route a refused method was sent to.
 */
const bindRoute = (route: CompiledRoute, upstream: CompiledUpstream): MiddlewareHandler<GatewayEnv> =>
  async function bindRoute(c, next) {
    c.set("route", route);
    c.set("upstream", upstream);
    c.set("identity", undefined);
    c.set("origin", undefined);
    c.set("bag", new Map());
    // A preflight is let through only to a chain with a plugin that answers it (cors); that
    // plugin never forwards it, so the origin still only sees the route's methods.
    if (!route.methods.has(c.req.method) && !(route.answersPreflight && isPreflight(c))) {
      throw new GatewayError("METHOD_NOT_ALLOWED", `${c.req.method} is not allowed on this route.`, {
        headers: { allow: [...route.methods].join(", ") },
      });
    }
    c.set("upstreamHeaders", sanitizeRequestHeaders(c.req.raw.headers));
    c.set("forward", { timeoutMs: upstream.timeoutMs, idleTimeoutMs: upstream.idleTimeoutMs, injectedSecrets: [] });
    await next();
  };

/** Defence in depth: a preflight let through by bindRoute must have been answered by now. */
const refuseUnansweredPreflight: MiddlewareHandler<GatewayEnv> = async function refuseUnansweredPreflight(c, next) {
  if (!c.get("route").methods.has(c.req.method)) {
    throw new GatewayError("METHOD_NOT_ALLOWED", `${c.req.method} is not allowed on this route.`, { headers: { allow: [...c.get("route").methods].join(", ") } });
  }
  await next();
};

/**
 * A response a plugin answered with itself (a cache hit, a fetch of its own), copied: one from
 * `fetch()` or `caches.default.match()` has immutable headers, and the steps outside the plugin
 * (cors, the request id on every response, the response edits of headers) set headers on it, so
 * as is it turned into a 500 after the answer was already made. Its hop-by-hop headers and any
 * injected secret are stripped, as on an origin's response. Only on that path: a plugin that
 * calls `next()` costs nothing more.
 */
function ownAnswer(c: Context<GatewayEnv>, res: Response): Response {
  const copy = new Response(res.body, res);
  sanitizeResponseHeaders(copy.headers, c.get("forward")?.injectedSecrets);
  return copy;
}

/**
 * Registers every configured route on the app: `bindRoute → plugins (declared order) → forward`.
 * Hono runs the first matching route's chain; the forwarder always answers, so later routes
 * that would also match never run. Each step is wrapped so an error it throws is tagged with
 * its name (`gateway` for bindRoute, the plugin's name, `upstream` for the forwarder): that is
 * how the audit trail records which plugin refused a request.
 */
export function mountGateway(app: Hono<GatewayEnv>, gateway: CompiledGateway): void {
  for (const route of gateway.routes) {
    const upstream = gateway.upstreams.get(route.upstream)!;
    const handlers = [
      tagDecisions("gateway", bindRoute(route, upstream)),
      ...route.plugins.map((p) => tagDecisions(p.name, p.handler, ownAnswer)),
      // Only a route whose chain may let a preflight through needs the check behind it.
      ...(route.answersPreflight ? [tagDecisions("gateway", refuseUnansweredPreflight)] : []),
      tagDecisions("upstream", forwardToUpstream),
    ] as Handler<GatewayEnv>[];
    const patterns = route.wildcard ? [route.prefix || "/", `${route.prefix}/*`] : [route.path];
    // Hono's overloads want a literal handler list; the chain's length is only known at load.
    const register = app.all.bind(app) as (path: string, ...h: Handler<GatewayEnv>[]) => unknown;
    for (const pattern of new Set(patterns)) register(pattern, ...handlers);
  }
}
