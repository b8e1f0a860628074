import { Hono, type Context, type MiddlewareHandler } from "hono";
import { auditPreChain } from "./audit/record";
import { dbFor } from "./db";
import { validateEnv, type GatewayEnv } from "./env";
import { notFound, onError } from "./errors";
import { canonicalPath, mountGateway } from "./gateway";
import type { CompiledGateway } from "./gateway/types";
import { isolateKeyCache } from "./services/key-cache";

/**
 * Always our own id: a client-chosen request id could collide with another request's in logs
 * and audit, so the incoming X-Request-Id is ignored (and not forwarded).
 */
const requestId = (): MiddlewareHandler<GatewayEnv> =>
  async function requestId(c, next) {
    const id = `req_${crypto.randomUUID().replaceAll("-", "")}`;
    c.set("requestId", id);
    await next();
    c.res.headers.set("x-request-id", id);
  };

/** Builds the per-request services from validated bindings (D1 via drizzle, the isolate key cache). */
const services = (): MiddlewareHandler<GatewayEnv> =>
  async function services(c, next) {
    c.set("services", { db: dbFor(c.env.DB), keyCache: isolateKeyCache, env: validateEnv(c.env) });
    c.set("clientIp", c.req.header("cf-connecting-ip") || undefined);
    await next();
  };

// The gateway context of each admin request, for the lazily loaded admin app to continue in.
const outerContext = new WeakMap<Request, Context<GatewayEnv>>();
let adminApp: Promise<Hono<GatewayEnv>> | undefined;

/**
 * The admin API, loaded on the first /admin/v1 request. Its zod/OpenAPI schemas are most of the
 * Worker's start-up work, which gateway traffic should not pay for (the bundle still holds it:
 * the dynamic import stays inside it, evaluated on first use). The admin app continues the
 * request's context: request id, services and client IP come from the outer middlewares.
 */
const adminApi = (): MiddlewareHandler<GatewayEnv> =>
  async function adminApi(c) {
    adminApp ??= import("./admin").then(({ createAdminApp }) => {
      const inner = new Hono<GatewayEnv>();
      inner.onError(onError);
      inner.notFound(notFound);
      inner.use("*", async function adminContext(ic, next) {
        const oc = outerContext.get(ic.req.raw)!;
        ic.set("requestId", oc.get("requestId"));
        ic.set("services", oc.get("services"));
        ic.set("clientIp", oc.get("clientIp"));
        await next();
      });
      inner.route("/admin/v1", createAdminApp());
      return inner;
    });
    const inner = await adminApp;
    outerContext.set(c.req.raw, c);
    let ctx: ExecutionContext | undefined;
    try {
      ctx = c.executionCtx;
    } catch {
      ctx = undefined; // app.request() in unit tests has none
    }
    return inner.fetch(c.req.raw, c.env, ctx);
  };

/**
 * The whole Worker: request id → services → (audit of pre-chain refusals) → canonical-path
 * guard → admin API or a configured route's plugin chain → origin. Anything unmatched is a 404
 * problem and never forwarded.
 *
 * @example export default { fetch: createApp(gateway).fetch };
 */
export function createApp(gateway: CompiledGateway): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  app.onError(onError);
  app.notFound(notFound);
  app.use("*", requestId(), services(), auditPreChain(gateway), canonicalPath());
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.all("/admin/v1", adminApi());
  app.all("/admin/v1/*", adminApi());
  mountGateway(app, gateway);
  return app;
}
