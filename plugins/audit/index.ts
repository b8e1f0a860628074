import { definePlugin } from "../../worker/gateway/plugin";
import { AUDIT_BAG, auditOptions } from "../../worker/audit/options";
import { meterBody } from "../../worker/audit/meter";
import { AUDIT_PLUGIN_NAME, recordRequest } from "../../worker/audit/record";

export { auditOptions, AUDIT_BAG, DEFAULT_REDACTED_QUERY_PARAMS, type AuditOptionsInput as AuditOptions } from "../../worker/audit/options";

/**
 * Records one request audit event per request: who (proxy user, key id — never the key),
 * what (route, method, redacted path), where from (client IP, country, colo), what the gateway
 * decided (`allowed`, or the refusing plugin and its code), what the origin answered, sizes,
 * latencies and limit state. Put it FIRST in the global chain: it wraps everything after it, so
 * it sees every decision. Events are batched per isolate and flushed in `waitUntil` to the
 * AUDIT_QUEUE (when bound) or D1; a failing sink never changes a response.
 *
 * @example plugins: [audit(), keyAuth(), authorize()]
 * @example audit({ keepQueryParams: ["page", "limit"], sink: "d1" }) // allowlist the query; skip the queue
 */
export const audit = definePlugin({
  name: AUDIT_PLUGIN_NAME,
  traits: { leavesIdentityHeaders: true },
  config: auditOptions,
  create: (opts) =>
    async function audit(c, next) {
      const startedAt = Date.now();
      // Tells key-auth that last_used_at will come from this trail (no per-key D1 write).
      c.get("bag").set(AUDIT_BAG.active, true);
      // A request body without Content-Length (chunked) is counted as whoever reads it (a plugin,
      // the forwarder) reads it; a body with a length, or none, costs nothing here.
      // (GET/HEAD bodies are never forwarded, and a Request cannot be rebuilt with one.)
      const method = c.req.method;
      if (method !== "GET" && method !== "HEAD") {
        const body = c.req.raw.body;
        if (body !== null && !c.req.raw.headers.has("content-length")) {
          const { stream, meter } = meterBody(body);
          c.req.raw = new Request(c.req.raw, { body: stream });
          c.set("auditBodyIn", meter);
        }
      }
      try {
        await next();
      } finally {
        recordRequest(c, opts, startedAt);
      }
    },
});
