import { Hono, type MiddlewareHandler } from "hono";
import { createAdminApp } from "./admin";
import { createDashboard } from "./dashboard";
import { auditPreChain } from "./audit/record";
import { dbFor } from "./db";
import { validateEnv, type GatewayEnv } from "./env";
import { notFound, onError } from "./errors";
import { canonicalPath, mountGateway } from "./gateway";
import type { CompiledGateway } from "./gateway/types";
import { clientIpOf } from "./lib/client-ip";
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
const services = (gateway: CompiledGateway): MiddlewareHandler<GatewayEnv> =>
  async function services(c, next) {
    c.set("gateway", gateway);
    c.set("services", { db: dbFor(c.env.DB), keyCache: isolateKeyCache, env: validateEnv(c.env) });
    c.set("clientIp", clientIpOf(c.req.raw.headers));
    await next();
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
  app.use("*", requestId(), services(gateway), auditPreChain(gateway), canonicalPath());
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.route("/admin/v1", createAdminApp());
  app.route("/admin/ui", createDashboard());
  mountGateway(app, gateway);
  return app;
}
