import type { Context, MiddlewareHandler } from "hono";
import type { GatewayEnv } from "../env";
import type { CompiledGateway } from "../gateway/types";
import { waitUntil } from "../gateway/wait-until";
import { buildRequestEvent } from "./event";
import type { AuditOptions } from "./options";
import { isolateAuditBuffer } from "./sink";

/** The plugin name the gateway looks for when deciding whether (and how) to audit. */
export const AUDIT_PLUGIN_NAME = "audit";

/**
 * Records the request's event once (the plugin and the pre-chain fallback both call this; the
 * first wins). Never throws and never awaits I/O: the event joins the isolate's batch, which a
 * `waitUntil` flushes after the response.
 */
export function recordRequest(c: Context<GatewayEnv>, opts: AuditOptions, startedAt: number): void {
  if (c.get("auditRecorded")) return;
  c.set("auditRecorded", true);
  try {
    isolateAuditBuffer.add(buildRequestEvent(c, opts, startedAt), opts, c.env, (p) => waitUntil(c, p));
  } catch (err) {
    console.error(JSON.stringify({ level: "error", msg: "audit event not recorded", requestId: c.get("requestId"), error: String(err) }));
  }
}

const isAdminOrHealth = (path: string) => path === "/healthz" || path === "/admin/v1" || path.startsWith("/admin/v1/");

/**
 * App-level companion of the audit plugin, for requests refused before any route chain ran:
 * 400 PATH_INVALID (non-canonical path), 404 (no route matches) and 405 (method not allowed on
 * a route — bindRoute refuses before the plugins). It records them with `decidedBy: "gateway"`,
 * using the options of the matched route's audit plugin (405), or of the global one (400/404,
 * when its `recordUnmatched` is on). Routes that disable the audit plugin are not recorded.
 * Admin API and /healthz requests are never request events (admin mutations have their own trail).
 */
export function auditPreChain(gateway: CompiledGateway): MiddlewareHandler<GatewayEnv> {
  const globalAudit = gateway.globalPlugins.find((p) => p.name === AUDIT_PLUGIN_NAME);
  return async function auditPreChain(c, next) {
    const startedAt = Date.now();
    await next();
    if (c.get("auditRecorded") || isAdminOrHealth(c.req.path)) return;
    const route = c.get("route");
    const instance = route ? route.plugins.find((p) => p.name === AUDIT_PLUGIN_NAME) : globalAudit;
    if (!instance) return;
    const opts = instance.options as AuditOptions;
    if (!route && !opts.recordUnmatched) return;
    recordRequest(c, opts, startedAt);
  };
}
