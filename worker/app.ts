import { Hono, type MiddlewareHandler } from "hono";
import { createAdminApp } from "./admin";
import { createDashboard } from "./dashboard";
import { auditPreChain } from "./audit/record";
import { dbFor } from "./db";
import { validateEnv, type Env, type GatewayEnv, type Services } from "./env";
import { notFound, onError } from "./errors";
import { canonicalPath, mountGateway } from "./gateway";
import type { CompiledGateway } from "./gateway/types";
import { clientIpOf } from "./lib/client-ip";
import { isolateKeyCache } from "./services/key-cache";

// 64 random bits per isolate (drawn on its first request: Workers refuse random values at global
// scope) followed by a per-isolate counter: unique across isolates without a random draw per
// request. Request ids are identifiers, not secrets: nothing trusts them for access.
let isolateIdPrefix: string | undefined;
let requestCounter = 0;
function newRequestId(): string {
  isolateIdPrefix ??= Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
  requestCounter = (requestCounter + 1) % Number.MAX_SAFE_INTEGER;
  return `req_${isolateIdPrefix}${requestCounter.toString(16).padStart(16, "0")}`;
}

// Bindings are one object for the life of an isolate, so its services are built once, not per request.
const servicesByEnv = new WeakMap<object, Services>();
function servicesFor(env: Env): Services {
  let s = servicesByEnv.get(env);
  if (!s) servicesByEnv.set(env, (s = { db: dbFor(env.DB), keyCache: isolateKeyCache, env: validateEnv(env) }));
  return s;
}

/**
 * The request's context: its id, the gateway, the services (D1 via drizzle, the isolate key
 * cache, validated bindings) and the client IP. One middleware, not one per variable: each step
 * of a Hono chain costs a dispatch on every request.
 *
 * The id is always our own: a client-chosen request id could collide with another request's in
 * logs and audit, so the incoming X-Request-Id is ignored (and not forwarded). If the bindings
 * are invalid, the error handler still tags the problem with the id.
 */
const requestContext = (gateway: CompiledGateway): MiddlewareHandler<GatewayEnv> =>
  async function requestContext(c, next) {
    const id = newRequestId();
    c.set("requestId", id);
    c.set("gateway", gateway);
    c.set("services", servicesFor(c.env));
    c.set("clientIp", clientIpOf(c.req.raw.headers));
    await next();
    c.res.headers.set("x-request-id", id);
  };

/**
 * The whole Worker: request context (id, services, client IP) → (audit of pre-chain refusals) → canonical-path
 * guard → admin API or a configured route's plugin chain → origin. Anything unmatched is a 404
 * problem and never forwarded.
 *
 * @example export default { fetch: createApp(gateway).fetch };
 */
export function createApp(gateway: CompiledGateway): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  app.onError(onError);
  app.notFound(notFound);
  app.use("*", requestContext(gateway), auditPreChain(gateway), canonicalPath());
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.route("/admin/v1", createAdminApp());
  app.route("/admin/ui", createDashboard());
  mountGateway(app, gateway);
  return app;
}
