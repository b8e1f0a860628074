import type { Context } from "hono";
import type { GatewayEnv } from "../env";
import type { CompiledGateway } from "../gateway/types";
import { waitUntil } from "../gateway/wait-until";
import { GatewayError } from "../errors";
import { buildRequestEvent, type RequestEvent } from "./event";
import { meterBody, type BodyMeter } from "./meter";
import type { AuditOptions } from "./options";
import { isolateAuditBuffer } from "./sink";

/** The plugin name the gateway looks for when deciding whether (and how) to audit. */
export const AUDIT_PLUGIN_NAME = "audit";

/**
 * Records the request's event once (the plugin and the pre-chain fallback both call this; the
 * first wins). Never throws and never awaits I/O: the event joins the isolate's batch, which a
 * `waitUntil` flushes after the response.
 *
 * A response body without Content-Length (chunked origin answer, a plugin's own streamed body)
 * is passed through a byte counter and the event is recorded when that stream ends — read to the
 * end, cancelled by a client abort, broken by the origin, or idle for `streamIdleMs` — with the
 * bytes actually sent. The wait itself is a `waitUntil` registered before the response leaves,
 * and it also owns the flush the event then joins; the idle bound keeps that wait inside the
 * time the runtime grants `waitUntil` work after a client is gone, so the event is not lost.
 */
export function recordRequest(c: Context<GatewayEnv>, opts: AuditOptions, startedAt: number): void {
  if (c.get("auditRecorded")) return;
  c.set("auditRecorded", true);
  try {
    const event = buildRequestEvent(c, opts, startedAt);
    const body = event.bytesOut === null ? c.res.body : null;
    if (!body) {
      isolateAuditBuffer.add(event, opts, c.env, (p) => waitUntil(c, p));
      return;
    }
    const { stream, meter } = meterBody(body, { idleMs: opts.streamIdleMs });
    const bodyIn = c.get("auditBodyIn");
    const res = c.res;
    // Unset first so Hono does not merge the old headers into the new response: they are the same.
    c.res = undefined;
    c.res = new Response(stream, res);
    waitUntil(
      c,
      meter.finished.then(() => {
        const flushes: Promise<unknown>[] = [];
        try {
          settleStreamed(event, meter, bodyIn);
          isolateAuditBuffer.add(event, opts, c.env, (p) => void flushes.push(p));
        } catch (err) {
          notRecorded(event.id, err);
        }
        return Promise.all(flushes);
      }),
    );
  } catch (err) {
    notRecorded(c.get("requestId"), err);
  }
}

function notRecorded(requestId: string, err: unknown): void {
  console.error(JSON.stringify({ level: "error", msg: "audit event not recorded", requestId, error: String(err) }));
}

/**
 * Fills in what is known once a streamed response has ended: the bytes sent (and read of a
 * length-less request body by then), and how the transfer ended when it did not complete —
 * `reason: client_aborted` when the client stopped reading, `stream_idle` when nothing moved for
 * `streamIdleMs` (recorded then, bytes so far: see MeterOutcome); when the stream broke, an allowed
 * request becomes `decision: error` (`reason: stream_failed`, with the error's code when the
 * gateway cut it off, e.g. `UPSTREAM_RESPONSE_TOO_LARGE`). A plugin's own reason is kept.
 */
function settleStreamed(event: RequestEvent, out: BodyMeter, bodyIn: BodyMeter | undefined): void {
  event.bytesOut = out.bytes;
  // The request body may still have been streaming to the origin when the headers came back.
  if (bodyIn?.read) event.bytesIn = bodyIn.bytes;
  if (out.outcome === "cancelled") event.reason ??= "client_aborted";
  else if (out.outcome === "idle") event.reason ??= "stream_idle";
  else if (out.outcome === "error" && event.decision === "allowed") {
    event.decision = "error";
    event.decidedBy = event.originStatus !== null ? "upstream" : "gateway";
    event.code = out.error instanceof GatewayError ? out.error.code : null;
    event.reason ??= "stream_failed";
  }
}

// The admin API and the dashboard are not proxied traffic (their changes go to the admin trail);
// routed by no gateway route, a dashboard page would otherwise count as a refusal in usage.
const isAdminOrHealth = (path: string) =>
  path === "/healthz" || path === "/admin/v1" || path.startsWith("/admin/v1/") || path === "/admin/ui" || path.startsWith("/admin/ui/");

/**
 * App-level companion of the audit plugin, for requests refused before any route chain ran:
 * 400 PATH_INVALID (non-canonical path), 404 (no route matches) and 405 (method not allowed on
 * a route — bindRoute refuses before the plugins). It records them with `decidedBy: "gateway"`,
 * using the options of the matched route's audit plugin (405), or of the global one (400/404,
 * when its `recordUnmatched` is on). Routes that disable the audit plugin are not recorded.
 * Admin API, dashboard and /healthz requests are never request events (admin mutations have their own trail).
 *
 * A function the request-context middleware calls once the response is final, not a middleware
 * of its own: a Hono middleware is a dispatch, a promise and an await on every request, and
 * request context already wraps every request.
 */
export function preChainRecorder(gateway: CompiledGateway): (c: Context<GatewayEnv>, startedAt: number) => void {
  const globalAudit = gateway.globalPlugins.find((p) => p.name === AUDIT_PLUGIN_NAME);
  return function recordPreChain(c, startedAt) {
    if (c.get("auditRecorded") || isAdminOrHealth(c.req.path)) return;
    const route = c.get("route");
    const instance = route ? route.plugins.find((p) => p.name === AUDIT_PLUGIN_NAME) : globalAudit;
    if (!instance) return;
    const opts = instance.options as AuditOptions;
    if (!route && !opts.recordUnmatched) return;
    recordRequest(c, opts, startedAt);
  };
}
