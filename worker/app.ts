import { Hono, type Context, type MiddlewareHandler } from "hono";
import { createAdminApp } from "./admin";
import { createDashboard } from "./dashboard";
import { preChainRecorder } from "./audit/record";
import { dbFor } from "./db";
import { validateEnv, type Env, type GatewayEnv, type Services } from "./env";
import { notFound, onError } from "./errors";
import { canonicalPath, mountGateway } from "./gateway";
import type { CompiledGateway } from "./gateway/types";
import { clientIpOf } from "./lib/client-ip";
import { once } from "./lib/once";
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
const requestContext = (gateway: CompiledGateway): MiddlewareHandler<GatewayEnv> => {
  // Records requests refused before any route chain ran (worker/audit/record.ts).
  const recordPreChain = preChainRecorder(gateway);
  return async function requestContext(c, next) {
    const startedAt = Date.now();
    const id = newRequestId();
    c.set("requestId", id);
    c.set("gateway", gateway);
    c.set("services", servicesFor(c.env));
    c.set("clientIp", clientIpOf(c.req.raw.headers));
    await next();
    recordPreChain(c, startedAt);
    c.res.headers.set("x-request-id", id);
  };
};

// The outer context of a request handed to a sub-app (see subApp).
const outerContexts = new WeakMap<Request, Context<GatewayEnv>>();
/** What a sub-app inherits from the outer app's middlewares. */
const INHERITED = ["requestId", "services", "gateway", "clientIp"] as const;

/**
 * A handler that hands every request under `base` to the Hono app `build` returns (the admin
 * API, the dashboard). The sub-app runs with the outer request's id, services and client IP (one
 * request, one id) and the same error and not-found handlers, as if mounted with `app.route`.
 *
 * The sub-app is built on the first request under `base`, not at start-up: its routes and zod
 * schemas are ~40% of the Worker's module evaluation, which every cold isolate pays before its
 * first request, and an isolate serving only proxy traffic never needs them (bench/README.md,
 * "Start-up").
 */
function subApp(base: string, build: () => Hono<GatewayEnv>): MiddlewareHandler<GatewayEnv> {
  const wrapperOf = once(() => {
    const wrapper = new Hono<GatewayEnv>();
    wrapper.onError(onError);
    wrapper.notFound(notFound);
    wrapper.use("*", async function inheritContext(inner, next) {
      const outer = outerContexts.get(inner.req.raw);
      if (outer) for (const name of INHERITED) inner.set(name, outer.get(name) as never);
      await next();
    });
    wrapper.route(base, build());
    return wrapper;
  });
  return async function toSubApp(c) {
    const wrapper = wrapperOf();
    outerContexts.set(c.req.raw, c);
    let ctx: ExecutionContext | undefined;
    try {
      ctx = c.executionCtx;
    } catch {
      ctx = undefined; // app.request() in tests has none
    }
    return wrapper.fetch(c.req.raw, c.env, ctx);
  };
}

/**
 * The whole Worker: request context (id, services, client IP; audit of pre-chain refusals) → canonical-path
 * guard → admin API or a configured route's plugin chain → origin. Anything unmatched is a 404
 * problem and never forwarded.
 *
 * @example export default { fetch: createApp(gateway).fetch };
 */
export function createApp(gateway: CompiledGateway): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  app.onError(onError);
  app.notFound(notFound);
  app.use("*", requestContext(gateway), canonicalPath());
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  // Separate apps behind one route each, not merged into this router: a proxied request is
  // then matched against the gateway's routes only, not against ~80 admin and dashboard routes.
  const admin = subApp("/admin/v1", createAdminApp);
  app.all("/admin/v1", admin);
  app.all("/admin/v1/*", admin);
  const dashboard = subApp("/admin/ui", () => createDashboard() as unknown as Hono<GatewayEnv>);
  app.all("/admin/ui", dashboard);
  app.all("/admin/ui/*", dashboard);
  mountGateway(app, gateway);
  return app;
}
