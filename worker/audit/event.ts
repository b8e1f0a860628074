import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { GatewayEnv } from "../env";
import { GatewayError, httpExceptionCode } from "../errors";
import { deciderOf } from "../gateway/decider";
import { rawPathOf, rawSearchOf } from "../gateway/upstream-url";
import { KEY_PREFIX } from "../lib/api-key";
import { AUDIT_BAG, type AuditOptions } from "./options";

/**
 * One request as the audit trail records it. The same shape travels through the Queue and is
 * stored in `request_events` (worker/db/schema/audit.ts). Never holds a key or secret.
 */
export interface RequestEvent {
  /** The gateway's request id: the idempotency key of the whole pipeline. */
  id: string;
  ts: number;
  userId: string | null;
  keyId: string | null;
  group: string | null;
  route: string | null;
  method: string;
  path: string;
  clientIp: string | null;
  country: string | null;
  colo: string | null;
  decision: "allowed" | "refused" | "error";
  decidedBy: string | null;
  code: string | null;
  reason: string | null;
  status: number;
  originStatus: number | null;
  /** Request body bytes: Content-Length, or counted as read when the body has no length. */
  bytesIn: number | null;
  /** Response body bytes sent: Content-Length, or counted as streamed when it has none. */
  bytesOut: number | null;
  /** Until the response (headers) was ready; a streamed body's transfer time is not included. */
  latencyMs: number;
  originLatencyMs: number | null;
  limitState: string | null;
  /** Transport-only (not stored): the key authenticated, so it counts as used for `last_used_at`. */
  keyUsed?: boolean;
}

export const REDACTED = "REDACTED";

function matches(name: string, patterns: readonly string[]): boolean {
  const n = name.toLowerCase();
  return patterns.some((p) => {
    const q = p.toLowerCase();
    return q.endsWith("*") ? n.startsWith(q.slice(0, -1)) : n === q;
  });
}

/** True when `raw` (as sent, or percent-decoded) contains something shaped like a Portcullis key. */
function holdsKey(raw: string): boolean {
  if (raw.includes(KEY_PREFIX)) return true;
  if (!raw.includes("%")) return false;
  try {
    return decodeURIComponent(raw.replaceAll("+", " ")).includes(KEY_PREFIX);
  } catch {
    return true; // undecodable: cannot prove it holds no key
  }
}

/**
 * The path and query as stored: values of listed (or, in allowlist mode, unlisted) parameters
 * become REDACTED, and any path segment, parameter name or value holding something shaped like a
 * Portcullis key (as sent or percent-decoded) is redacted, whatever the rules say.
 *
 * @example redactTarget("/a", "?token=x&q=1", opts) // "/a?token=REDACTED&q=1"
 */
export function redactTarget(pathname: string, search: string, opts: Pick<AuditOptions, "redactQueryParams" | "keepQueryParams">): string {
  // Most paths hold neither a key nor an escape: nothing to split.
  const path =
    !pathname.includes(KEY_PREFIX) && !pathname.includes("%")
      ? pathname
      : pathname
          .split("/")
          .map((s) => (holdsKey(s) ? REDACTED : s))
          .join("/");
  if (!search || search === "?") return path;
  const parts = search
    .slice(1)
    .split("&")
    .map((pair) => {
      const eq = pair.indexOf("=");
      const rawName = eq === -1 ? pair : pair.slice(0, eq);
      if (holdsKey(rawName)) return REDACTED;
      if (eq === -1) return pair;
      let name = rawName;
      try {
        name = decodeURIComponent(rawName.replaceAll("+", " "));
      } catch {
        // keep the raw name: it is only compared, never decoded into the row
      }
      const value = pair.slice(eq + 1);
      const redact = matches(name, opts.redactQueryParams) || (opts.keepQueryParams !== undefined && !matches(name, opts.keepQueryParams)) || holdsKey(value);
      return redact ? `${rawName}=${REDACTED}` : pair;
    });
  return `${path}?${parts.join("&")}`;
}

function intHeader(headers: Headers, name: string): number | null {
  const v = headers.get(name);
  if (v === null || !/^\d{1,15}$/.test(v.trim())) return null;
  return Number(v.trim());
}

/** Limit state from a plugin (bag) or, failing that, from standard RateLimit response headers. */
function limitStateOf(c: Context<GatewayEnv>, bag: Map<string, unknown> | undefined): string | null {
  const fromBag = bag?.get(AUDIT_BAG.limitState);
  if (fromBag !== undefined) return JSON.stringify(fromBag).slice(0, 1000);
  const h = c.res.headers;
  const limit = intHeader(h, "ratelimit-limit") ?? intHeader(h, "x-ratelimit-limit");
  const retryAfter = intHeader(h, "retry-after");
  const combined = h.get("ratelimit");
  // Most responses carry no limit headers: four lookups, not nine.
  if (limit === null && retryAfter === null && !combined) return null;
  const state: Record<string, number | string> = {};
  const remaining = intHeader(h, "ratelimit-remaining") ?? intHeader(h, "x-ratelimit-remaining");
  const reset = intHeader(h, "ratelimit-reset") ?? intHeader(h, "x-ratelimit-reset");
  if (limit !== null) state.limit = limit;
  if (remaining !== null) state.remaining = remaining;
  if (reset !== null) state.reset = reset;
  if (retryAfter !== null) state.retryAfter = retryAfter;
  if (combined) state.ratelimit = combined.slice(0, 200);
  return Object.keys(state).length ? JSON.stringify(state) : null;
}

/**
 * Request body size: the declared Content-Length, 0 for no body, else the bytes the gateway read
 * of it so far (counted by the audit plugin); null for a length-less body nobody read (refused
 * before it was needed), whose size the gateway never learned.
 */
export function bytesInOf(c: Context<GatewayEnv>): number | null {
  const declared = intHeader(c.req.raw.headers, "content-length");
  if (declared !== null) return declared;
  if (c.req.raw.body === null) return 0;
  const meter = c.get("auditBodyIn");
  return meter?.read ? meter.bytes : null;
}

function codeOf(err: Error | undefined, status: number, routed: boolean): string | null {
  if (err instanceof GatewayError) return err.code;
  // The code the client got (onError maps it the same way), not a code of the audit's own.
  if (err instanceof HTTPException) return httpExceptionCode(err.status, routed);
  if (err) return "INTERNAL";
  if (!routed && status === 404) return "NOT_FOUND";
  return null;
}

/**
 * Builds the event for the request `c` once its response is final. Works both inside a route's
 * chain (the audit plugin) and outside it (requests refused before any chain ran), reading only
 * what the context already holds: no I/O, no awaits.
 */
export function buildRequestEvent(c: Context<GatewayEnv>, opts: AuditOptions, startedAt: number): RequestEvent {
  const url = c.req.url;
  const route = c.get("route");
  const bag = c.get("bag");
  const identity = c.get("identity");
  const origin = c.get("origin");
  const err = c.error;
  const status = c.res.status;
  const subject = bag?.get(AUDIT_BAG.subject) as { userId?: string; keyId?: string } | undefined;
  const reason = bag?.get(AUDIT_BAG.reason);

  let decision: RequestEvent["decision"];
  let decidedBy: string | null = null;
  if (err) {
    decidedBy = deciderOf(err) ?? "gateway";
    decision = decidedBy === "upstream" ? "error" : "refused";
  } else if (origin) {
    decision = "allowed";
  } else if (!route || status >= 400) {
    // Refused before a chain ran (404 unmatched), or a plugin answered with an error itself.
    decision = "refused";
    decidedBy = "gateway";
  } else {
    decision = "allowed"; // a plugin answered on the origin's behalf (e.g. a cache)
  }
  const cf = (c.req.raw as { cf?: { country?: unknown; colo?: unknown } }).cf;
  return {
    id: c.get("requestId"),
    ts: startedAt,
    userId: identity?.user.id ?? subject?.userId ?? null,
    keyId: identity?.key.id ?? subject?.keyId ?? null,
    group: identity?.user.group ?? null,
    route: route?.name ?? null,
    method: c.req.method,
    path: redactTarget(rawPathOf(url), rawSearchOf(url), opts).slice(0, 2048),
    clientIp: c.get("clientIp") ?? null,
    country: typeof cf?.country === "string" ? cf.country : null,
    colo: typeof cf?.colo === "string" ? cf.colo : null,
    decision,
    decidedBy,
    code: codeOf(err, status, route !== undefined),
    reason: typeof reason === "string" ? reason.slice(0, 100) : null,
    status,
    originStatus: origin?.status ?? null,
    bytesIn: bytesInOf(c),
    // HEAD: Hono drops whatever body the chain built, so nothing is sent. Without a length the
    // size is counted while the body streams (recordRequest) and filled in when it ends.
    bytesOut: c.req.method === "HEAD" ? 0 : (intHeader(c.res.headers, "content-length") ?? (c.res.body === null ? 0 : null)),
    latencyMs: Math.max(0, Date.now() - startedAt),
    originLatencyMs: origin?.latencyMs ?? null,
    limitState: limitStateOf(c, bag),
    keyUsed: identity !== undefined,
  };
}
