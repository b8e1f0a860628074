import { z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { AUDIT_BAG } from "../audit/options";
import type { Env, GatewayEnv } from "../env";
import { GatewayError } from "../errors";
import { waitUntil } from "../gateway/wait-until";
import { parseIp } from "../lib/cidr";
import type { ResolvedIdentity } from "../services/identity";
import { periodBounds, stateSlot, type Period } from "./algorithms";
import { durableObjectBackend } from "./durable-object";
import { isolateLeaseBook, returnLeased, spendLeased, type LeaseState } from "./lease-book";
import { effectiveLimitOf, isolateOverrideCache, type LimitSource } from "./overrides";
import { LimiterUnavailableError, type LimiterBackend, type LimitSpec } from "./types";
import { upstashBackend } from "./upstash";

// ── options shared by the rate-limit and quota plugins ────────────────────────────────────────
export const SUBJECT_PARTS = ["user", "key", "group", "ip", "route"] as const;
export type SubjectPart = (typeof SUBJECT_PARTS)[number];

const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;

export const commonLimitOptions = {
  limit: z.number().int().min(0).max(1_000_000_000).describe("Requests per window (rate limit) or per period (quota); overridable per role and per user"),
  by: z
    .array(z.enum(SUBJECT_PARTS))
    .min(1)
    .default(["user"])
    .refine((a) => new Set(a).size === a.length, "no duplicates")
    .describe("What one counter is shared by: proxy user (default), key, group, client IP (IPv6 per /64) or route, or a combination such as [\"user\", \"route\"]"),
  dryRun: z.boolean().default(false).describe("Shadow mode: count and report (headers, log, audit bag) what would be refused, but refuse nothing"),
  backend: z
    .enum(["auto", "durable-object", "upstash"])
    .default("auto")
    .describe("`auto`: Upstash when its URL and token env vars are set, else the Durable Object"),
  durableObjectBinding: z.string().regex(ENV_NAME).default("LIMITER").describe("Durable Object namespace binding of the LimiterDurableObject class"),
  upstash: z
    .strictObject({
      urlFromEnv: z.string().regex(ENV_NAME).default("UPSTASH_REDIS_REST_URL").describe("Env var holding the Upstash REST URL"),
      tokenFromEnv: z.string().regex(ENV_NAME).default("UPSTASH_REDIS_REST_TOKEN").describe("Env var holding the Upstash REST token"),
      prefix: z.string().regex(/^[A-Za-z0-9:_-]{1,64}$/).default("portcullis:limits").describe("Prefix of every Redis key"),
    })
    .prefault({})
    .describe("Where the Upstash backend finds its credentials"),
  timeoutMs: z.number().int().min(10).max(10_000).default(1_000).describe("Bound on a request's whole wait for the backend; beyond it the fail mode applies"),
  leaseMax: z
    .union([z.literal("auto"), z.number().int().min(1).max(10_000)])
    .default("auto")
    .describe("Most tokens an isolate leases at once (`auto` = limit/20, 1–100; 1 = a backend call per request). See README: leasing never over-admits"),
  headers: z
    .enum(["draft-06", "draft-08"])
    .default("draft-06")
    .describe(
      "RateLimit fields on every limited response: `draft-06` RateLimit-Limit, -Remaining, -Reset and -Policy (the route's limit with the fewest remaining); `draft-08` the structured RateLimit and RateLimit-Policy lists, one member named after each limit",
    ),
};

export interface LimitDefinition {
  kind: "rate" | "quota";
  name: string;
  algorithm: "fixed-window" | "sliding-window" | "token-bucket" | "period";
  limit: number;
  /** Window (rate) in ms; for quotas the period's nominal length, for display. */
  windowMs: number;
  period: Period | undefined;
  by: SubjectPart[];
  failMode: "open" | "closed";
  dryRun: boolean;
  backend: "auto" | "durable-object" | "upstash";
  durableObjectBinding: string;
  upstash: { urlFromEnv: string; tokenFromEnv: string; prefix: string };
  timeoutMs: number;
  leaseMax: number | "auto";
  /** Which IETF draft's RateLimit fields the responses carry (see commonLimitOptions.headers). */
  headers: "draft-06" | "draft-08";
}

/** Parses `500ms`, `1s`, `30s`, `1m`, `1h` (or a number of seconds) into ms. */
export function parseDuration(v: string | number): number | null {
  if (typeof v === "number") return Number.isFinite(v) && v > 0 ? Math.round(v * 1000) : null;
  const m = /^(\d+)(ms|s|m|h)$/.exec(v.trim());
  if (!m) return null;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
}

// ── backend selection ─────────────────────────────────────────────────────────────────────────
const backends = new WeakMap<object, Map<string, LimiterBackend>>();

/** The backend a limit uses in this environment (cached per bindings object and option set). */
export function backendFor(def: LimitDefinition, env: Env): LimiterBackend {
  let perEnv = backends.get(env);
  if (!perEnv) backends.set(env, (perEnv = new Map()));
  const url = env[def.upstash.urlFromEnv];
  const token = env[def.upstash.tokenFromEnv];
  const hasUpstash = typeof url === "string" && url !== "" && typeof token === "string" && token !== "";
  const kind = def.backend === "auto" ? (hasUpstash ? "upstash" : "durable-object") : def.backend;
  const id = kind === "upstash" ? `u|${def.upstash.urlFromEnv}|${def.upstash.tokenFromEnv}|${def.upstash.prefix}|${def.timeoutMs}` : `d|${def.durableObjectBinding}`;
  let b = perEnv.get(id);
  if (!b) {
    if (kind === "upstash") {
      if (!hasUpstash) throw new GatewayError("GATEWAY_MISCONFIGURED", `Limit "${def.name}" uses Upstash but ${def.upstash.urlFromEnv} / ${def.upstash.tokenFromEnv} are not set.`);
      b = upstashBackend({ url: url as string, token: token as string, prefix: def.upstash.prefix, timeoutMs: def.timeoutMs });
    } else {
      const ns = env[def.durableObjectBinding] as DurableObjectNamespace | undefined;
      if (!ns || typeof (ns as DurableObjectNamespace).idFromName !== "function") {
        throw new GatewayError("GATEWAY_MISCONFIGURED", `Limit "${def.name}" needs the Durable Object binding ${def.durableObjectBinding} (see wrangler.toml).`);
      }
      b = durableObjectBackend(ns as never);
    }
    perEnv.set(id, b);
  }
  return b;
}

// ── subjects ──────────────────────────────────────────────────────────────────────────────────
/**
 * The client IP as a counter key: IPv4 whole, IPv6 by its /64 (one customer's whole network).
 * Built from the parsed address, never the text, so other spellings of one address
 * (`::ffff:203.0.113.7`, `[2001:DB8::1]`, zero-padded groups) are the same subject. Missing or
 * unparsable addresses share one bucket each: never a way out of a limit.
 */
export function ipBucket(ip: string | undefined): string {
  if (!ip) return "ip:unknown";
  const p = parseIp(ip);
  if (!p) return "ip:invalid";
  if (p.family === 4) return `ip:${[24n, 16n, 8n, 0n].map((shift) => (p.value >> shift) & 0xffn).join(".")}`;
  return `ip6:${(p.value >> 64n).toString(16)}::/64`;
}

/** What a counter key can be built from (an identity's parts, the client IP, the route). */
export interface SubjectParts {
  userId: string | undefined;
  keyId: string | undefined;
  group: string | null | undefined;
  clientIp: string | undefined;
  route: string;
}

export const subjectPartsOf = (identity: ResolvedIdentity | undefined, clientIp: string | undefined, route: string): SubjectParts => ({
  userId: identity?.user.id,
  keyId: identity?.key.id,
  group: identity?.user.group,
  clientIp,
  route,
});

/**
 * One counter's key, e.g. `api|u:usr_…|r:orders`. Callers without an identity count by IP. A user
 * without a group counts alone where a limit counts by group (as a group of one): one shared
 * counter for everyone outside a group would let any one of them exhaust it for all the others.
 */
export function subjectKey(def: LimitDefinition, parts: SubjectParts): string {
  const out = [def.name];
  for (const p of def.by) {
    if (p === "user") out.push(parts.userId ? `u:${parts.userId}` : `anon:${ipBucket(parts.clientIp)}`);
    else if (p === "key") out.push(parts.keyId ? `k:${parts.keyId}` : `anon:${ipBucket(parts.clientIp)}`);
    else if (p === "group") out.push(parts.group ? `g:${parts.group}` : parts.userId ? `u:${parts.userId}` : `anon:${ipBucket(parts.clientIp)}`);
    else if (p === "ip") out.push(ipBucket(parts.clientIp));
    else out.push(`r:${parts.route}`);
  }
  return out.join("|");
}

export function specFor(def: LimitDefinition, limit: number, now: number): LimitSpec {
  if (def.kind === "quota") {
    const { start, end } = periodBounds(def.period!, now);
    return { algorithm: "period", limit, windowMs: end - start, periodStart: start, periodEnd: end };
  }
  return { algorithm: def.algorithm, limit, windowMs: def.windowMs };
}

export const leaseMaxFor = (def: LimitDefinition, limit: number): number =>
  def.leaseMax === "auto" ? Math.min(100, Math.max(1, Math.floor(limit / 20))) : def.leaseMax;

/** Runs a backend call within the limit's time budget; any failure becomes LimiterUnavailableError. */
export async function withinBudget<T>(backend: LimiterBackend, timeoutMs: number, call: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LimiterUnavailableError(backend.kind, "timeout")), timeoutMs);
  });
  const pending = call();
  // A call that loses the race still settles later; observe it so it is not an unhandled rejection.
  pending.catch(() => {});
  try {
    return await Promise.race([pending, timeout]);
  } catch (err) {
    if (err instanceof LimiterUnavailableError || err instanceof GatewayError) throw err;
    throw new LimiterUnavailableError(backend.kind, "error", err);
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

// ── failure accounting ────────────────────────────────────────────────────────────────────────
/** Backend failures seen by this isolate, per limit name (logged with each event). */
export const limiterFailures = new Map<string, number>();

/**
 * Lease calls this isolate has made to limiter backends (all limits): what leasing saves is
 * visible as calls ÷ requests (the benchmark reports it). Counted on the lease path only.
 */
export const limiterCalls = { count: 0 };

// ── headers ───────────────────────────────────────────────────────────────────────────────────
const secs = (ms: number) => Math.max(0, Math.ceil(ms / 1000));

/** Header texts that depend only on the effective limit (and the window): built once per value. */
interface LimitTexts {
  limit: string;
  /** draft-06: `<limit>;w=<seconds>`; draft-08: `"<name>";q=<limit>;w=<seconds>`, one list member. */
  policy: string;
}

/**
 * How a limit reports itself on responses (draft-ietf-httpapi-ratelimit-headers). Picked once per
 * limit from its `headers` option, so the request path does not branch on it.
 */
interface HeaderStyle {
  texts(limit: number): LimitTexts;
  /** An admitted (or dry-run) response: what is left and when it resets. */
  admitted(c: Context<GatewayEnv>, t: LimitTexts, remaining: number, resetMs: number): void;
  /** Failing open: which limit applies; what is left is unknown, so it is not said. */
  failedOpen(c: Context<GatewayEnv>, t: LimitTexts): void;
  /** A 429's own headers. */
  refused(t: LimitTexts, remaining: number, resetMs: number): Record<string, string>;
  /** A fail-closed 503's own headers: which limit applies, as failing open says it. */
  unknown(t: LimitTexts): Record<string, string>;
}

function headerStyle(def: LimitDefinition): HeaderStyle {
  const windowS = secs(def.windowMs);
  if (def.headers === "draft-08") {
    // Structured-field lists: each limit on the route adds its own member, named after the limit
    // (limit names are tokens of [a-z0-9_-], so they need no escaping inside the quotes).
    const member = `"${def.name}"`;
    const current = (remaining: number, resetMs: number) => `${member};r=${Math.max(0, remaining)};t=${secs(resetMs)}`;
    return {
      texts: (limit) => ({ limit: String(limit), policy: `${member};q=${limit};w=${windowS}` }),
      admitted(c, t, remaining, resetMs) {
        applyHeader(c, "ratelimit-policy", t.policy, true);
        applyHeader(c, "ratelimit", current(remaining, resetMs), true);
      },
      failedOpen: (c, t) => applyHeader(c, "ratelimit-policy", t.policy, true),
      refused: (t, remaining, resetMs) => ({ "ratelimit-policy": t.policy, ratelimit: current(remaining, resetMs) }),
      unknown: (t) => ({ "ratelimit-policy": t.policy }),
    };
  }
  return {
    texts: (limit) => ({ limit: String(limit), policy: `${limit};w=${windowS}` }),
    admitted: applyLimitHeaders,
    failedOpen: applyPolicyHeaders,
    refused: rateLimitHeaders,
    unknown: (t) => ({ "ratelimit-limit": t.limit, "ratelimit-policy": t.policy }),
  };
}

/** draft-06 RateLimit headers (RateLimit-Limit, -Remaining, -Reset, -Policy), for a 429's own headers. */
function rateLimitHeaders(t: LimitTexts, remaining: number, resetMs: number): Record<string, string> {
  return {
    "ratelimit-limit": t.limit,
    "ratelimit-remaining": String(Math.max(0, remaining)),
    "ratelimit-reset": String(secs(resetMs)),
    "ratelimit-policy": t.policy,
  };
}

/**
 * Sets the draft-06 RateLimit headers on the response unless a tighter limit (or the origin)
 * already reported fewer remaining: those four fields can describe one limit only. Four `set`s,
 * no intermediate object: this runs on every request.
 */
function applyLimitHeaders(c: Context<GatewayEnv>, t: LimitTexts, remaining: number, resetMs: number): void {
  let res = c.res;
  const existing = res.headers.get("ratelimit-remaining");
  const mine = Math.max(0, remaining);
  if (existing !== null && Number(existing) < mine) return;
  const reset = String(secs(resetMs));
  try {
    setLimitHeaders(res.headers, t, mine, reset);
  } catch {
    // Immutable headers (a fetch() response passed through): copy once.
    res = new Response(res.body, res);
    setLimitHeaders(res.headers, t, mine, reset);
    c.res = res;
  }
}

function setLimitHeaders(h: Headers, t: LimitTexts, remaining: number, reset: string): void {
  h.set("ratelimit-limit", t.limit);
  h.set("ratelimit-remaining", String(remaining));
  h.set("ratelimit-reset", reset);
  h.set("ratelimit-policy", t.policy);
}

/**
 * A fail-open response is still a limited one, but nobody knows what is left: it says which limit
 * applies (RateLimit-Limit, RateLimit-Policy) and leaves Remaining and Reset out rather than guess.
 * Figures a tighter limit (or the origin) already reported are kept.
 */
function applyPolicyHeaders(c: Context<GatewayEnv>, t: LimitTexts): void {
  if (c.res.headers.has("ratelimit-limit")) return;
  applyHeader(c, "ratelimit-limit", t.limit);
  applyHeader(c, "ratelimit-policy", t.policy);
}

/** Sets (or appends) one header, copying an immutable response once (see applyLimitHeaders). */
function applyHeader(c: Context<GatewayEnv>, name: string, value: string, append = false): void {
  try {
    if (append) c.res.headers.append(name, value);
    else c.res.headers.set(name, value);
  } catch {
    const res = new Response(c.res.body, c.res);
    if (append) res.headers.append(name, value);
    else res.headers.set(name, value);
    c.res = res;
  }
}

/**
 * The request was refused after this limit let it through, and never reached the origin: no answer
 * from the origin, and an error a later plugin, the gateway or the forwarder threw before sending
 * (a missing origin credential), or an error status a plugin answered itself. An origin that timed
 * out or could not be reached is not a refusal: it may have received the request and done the work.
 */
const refusedBeforeOrigin = (c: Context<GatewayEnv>): boolean =>
  c.get("origin") === undefined && (c.error ? !(c.error instanceof GatewayError && SENT_MAYBE.has(c.error.code)) : c.res.status >= 400);
const SENT_MAYBE = new Set(["UPSTREAM_TIMEOUT", "UPSTREAM_UNAVAILABLE"]);

/** What each limit decided for the request (bag key `limits`; also the audit event's `limitState`). */
export interface LimitOutcome {
  name: string;
  kind: "rate" | "quota";
  outcome: "allowed" | "refused" | "dry-run-refused" | "fail-open" | "fail-closed";
  limit: number;
  remaining: number | null;
  source: LimitSource;
}

function recordOutcome(c: Context<GatewayEnv>, o: LimitOutcome): LimitOutcome {
  // c.get, not c.var: c.var builds an object of every variable on each access.
  const bag = c.get("bag");
  if (!bag) return o;
  let list = bag.get("limits") as LimitOutcome[] | undefined;
  if (list === undefined) {
    list = [];
    bag.set("limits", list);
    // The audit event's limit state: every limit's decision, dry-run refusals included (the same list).
    bag.set(AUDIT_BAG.limitState, list);
  }
  list.push(o);
  return o;
}

// ── per-handler caches (built once per plugin instance, not per request) ──────────────────────
/**
 * Builds a subject's key in the cache of one handler: for the common single-part subjects a
 * string the request already holds (the user's or key's id, the client IP as sent — no parsing
 * or allocation per request), else the full counter key. Two local keys may name one counter
 * (two spellings of one IPv6 /64): their subjects then share one lease state through the book.
 */
type LocalKey = (identity: ResolvedIdentity | undefined, c: Context<GatewayEnv>) => string;

function localKeyBuilder(def: LimitDefinition): LocalKey {
  const full: LocalKey = (identity, c) => subjectKey(def, subjectPartsOf(identity, c.get("clientIp"), c.get("route").name));
  if (def.by.length === 1 && def.by[0] === "user") return (identity, c) => (identity ? identity.user.id : full(identity, c));
  if (def.by.length === 1 && def.by[0] === "key") return (identity, c) => (identity ? identity.key.id : full(identity, c));
  // "\u0001" + the address: never a user or key id, nor a full key (those start with the limit's name).
  if (def.by.length === 1 && def.by[0] === "ip") return (_identity, c) => IP_KEY_PREFIX + (c.get("clientIp") ?? "");
  return full;
}

const IP_KEY_PREFIX = "\u0001";

/** One counter as this handler knows it: its backend key, lease-book id and lease state. */
interface Subject {
  key: string;
  bookId: string;
  state: LeaseState;
  /** The lease book's generation when `state` was looked up (see LeaseBook.generation). */
  gen: number;
  /** The effective limit of this subject's last request: a lower one voids held tokens. */
  limit: number;
}

const MAX_SUBJECTS = 20_000;

/** Overrides are cached as long as resolved keys are (the same "within the TTL" guarantee). */
const overrideTtlMs = (c: Context<GatewayEnv>): number => c.get("services").env.KEY_CACHE_TTL_SECONDS * 1000;

/** What the backend answers a limit of 0 with: the rest of the window or period; a bucket's refill time. */
const blockedForMs = (spec: LimitSpec, now: number): number =>
  spec.algorithm === "period" ? Math.max(1, spec.periodEnd! - now) : spec.algorithm === "token-bucket" ? spec.windowMs : spec.windowMs - (now % spec.windowMs);

// ── the middleware ────────────────────────────────────────────────────────────────────────────
/** Definitions by handler, so the admin status endpoint can find the limits in a compiled gateway. */
export const limitRegistry = new WeakMap<MiddlewareHandler<GatewayEnv>, LimitDefinition>();

/**
 * The per-request limit check shared by the rate-limit and quota plugins: resolve the effective
 * limit (user override > best role override > config), spend a leased token (leasing from the
 * backend only when none is held), then answer 429 or pass on and add the RateLimit headers.
 *
 * Hot path (a warm subject holding leased tokens): no backend call and no await before `next()`
 * — a Map lookup for the subject, a synchronous read of the cached overrides, one token spent,
 * one small outcome object for the audit event, four response headers (two in draft-08).
 * Everything that depends
 * only on the options (key builder, header texts, the backend for the bindings) is built here,
 * once per plugin instance.
 */
export function createLimitHandler(def: LimitDefinition): MiddlewareHandler<GatewayEnv> {
  const code = def.kind === "quota" ? "QUOTA_EXCEEDED" : "RATE_LIMITED";
  const localKey = localKeyBuilder(def);
  const windowS = secs(def.windowMs);

  const style = headerStyle(def);
  const configTexts = style.texts(def.limit);
  const overriddenTexts = new Map<number, LimitTexts>();
  const textsFor = (limit: number): LimitTexts => {
    if (limit === def.limit) return configTexts;
    let t = overriddenTexts.get(limit);
    if (!t) {
      if (overriddenTexts.size >= 1_000) overriddenTexts.clear();
      overriddenTexts.set(limit, (t = style.texts(limit)));
    }
    return t;
  };

  // The spec the backend counts with, per effective limit; a quota's also per calendar period.
  const specs = new Map<number, LimitSpec>();
  const specAt = (limit: number, now: number): LimitSpec => {
    let spec = specs.get(limit);
    if (spec === undefined || (spec.periodEnd !== undefined && now >= spec.periodEnd) || (spec.periodStart !== undefined && now < spec.periodStart)) {
      if (specs.size >= 1_000) specs.clear();
      specs.set(limit, (spec = specFor(def, limit, now)));
    }
    return spec;
  };

  // The backend for the bindings this handler last saw (one env object per isolate in practice),
  // and the subjects it counts: a new env may select another backend, so subjects start afresh.
  let boundEnv: Env | undefined;
  let backend: LimiterBackend | undefined;
  const subjects = new Map<string, Subject>();
  const book = isolateLeaseBook;

  const subjectFor = (local: string, identity: ResolvedIdentity | undefined, c: Context<GatewayEnv>, spec: LimitSpec): Subject => {
    let sub = subjects.get(local);
    if (sub === undefined) {
      if (subjects.size >= MAX_SUBJECTS) subjects.delete(subjects.keys().next().value!);
      const key = local.startsWith(`${def.name}|`) ? local : subjectKey(def, subjectPartsOf(identity, c.get("clientIp"), c.get("route").name));
      const bookId = `${backend!.kind}|${key}|${stateSlot(spec)}`;
      sub = { key, bookId, state: book.stateFor(bookId, spec), gen: book.generation, limit: spec.limit };
      subjects.set(local, sub);
    } else if (sub.gen !== book.generation) {
      sub.state = book.stateFor(sub.bookId, spec);
      sub.gen = book.generation;
    }
    return sub;
  };

  const handler: MiddlewareHandler<GatewayEnv> = async function limit(c, next) {
    const identity = c.get("identity");
    let now = Date.now();
    let limit = def.limit;
    let source: LimitSource = "config";
    let allowed: boolean;
    let remaining: number;
    let resetMs: number;
    let retryMs = 0;
    // The lease this request's token came from, and its counter (for a quota's give-back).
    let s: LeaseState | undefined;
    let spentFrom = 0;
    try {
      if (identity) {
        const cache = isolateOverrideCache;
        const snapshot = cache.peek(now) ?? (await cache.snapshot(c.get("services").db, overrideTtlMs(c), now));
        if (!snapshot.empty) {
          const userId = identity.user.id;
          const own = snapshot.users
            ? snapshot.users.get(userId)
            : (cache.peekUser(userId, now) ?? (await cache.userOverrides(c.get("services").db, userId, overrideTtlMs(c), now)));
          ({ limit, source } = effectiveLimitOf(snapshot, own, identity.roles, def.name, def.limit));
        }
        // The reads above may have waited on D1: a token must not be spent, nor a window or
        // period chosen, by a clock read before that wait (it could be past its window by now).
        now = Date.now();
      }
      if (c.env !== boundEnv) {
        backend = backendFor(def, c.env);
        boundEnv = c.env;
        subjects.clear();
      }
      const spec = specAt(limit, now);
      const sub = subjectFor(localKey(identity, c), identity, c, spec);
      s = sub.state;
      if (limit < sub.limit) {
        // The limit was lowered (an override): tokens leased under the higher one must not be
        // spent. Expired now; a bucket or quota hands them back with its next lease call.
        s.expiresAt = 0;
      }
      sub.limit = limit;
      if (spendLeased(s, now)) {
        // A warm subject: a token this isolate already holds (counted by the backend when leased).
        allowed = true;
        spentFrom = s.window;
        remaining = s.backendRemaining + s.tokens;
        resetMs = Math.max(0, s.resetMs - (now - s.measuredAt));
      } else if (limit === 0) {
        // Blocked (an override of 0): nothing to count, so no backend to ask — and so no fail mode
        // to let a blocked user through while the backend is down. Retry when the backend would say.
        allowed = false;
        remaining = 0;
        resetMs = retryMs = blockedForMs(spec, now);
      } else {
        const b = backend!;
        const key = sub.key;
        const d = await book.acquireFrom(s, {
          leaseMax: leaseMaxFor(def, limit),
          timeoutMs: def.timeoutMs,
          backend: b.kind,
          call: (want, give, giveWindow) => {
            limiterCalls.count++;
            // The spec as of this call, not of the request's start: a request waiting on another's
            // lease call may outlive its quota period, and a stale period's grant would expire on
            // arrival (asked again with the same stale spec, for ever).
            const current = specAt(limit, Date.now());
            return withinBudget(b, def.timeoutMs, () => b.lease(key, { spec: current, want, give, giveWindow }));
          },
          keepAlive: (call) => waitUntil(c, call),
        });
        ({ allowed, remaining, resetMs, retryMs } = d);
        spentFrom = s.window;
      }
    } catch (err) {
      if (err instanceof GatewayError) throw err;
      const n = (limiterFailures.get(def.name) ?? 0) + 1;
      limiterFailures.set(def.name, n);
      console.error(
        JSON.stringify({
          level: "warn",
          msg: "limiter unavailable",
          requestId: c.get("requestId"),
          limit: def.name,
          failMode: def.failMode,
          reason: err instanceof LimiterUnavailableError ? err.reason : "error",
          error: String(err),
          failuresInIsolate: n,
        }),
      );
      if (def.failMode === "closed" && def.dryRun) {
        // A shadow limit never refuses, not even for its backend: report the 503 it would have
        // answered, admit, and say (like failing open) which limit applies but not what is left.
        recordOutcome(c, { name: def.name, kind: def.kind, outcome: "dry-run-refused", limit, remaining: null, source });
        await next();
        style.failedOpen(c, textsFor(limit));
        applyHeader(c, "ratelimit-dry-run", `would-refuse; limit="${def.name}"; code=LIMITER_UNAVAILABLE`);
        return;
      }
      if (def.failMode === "closed") {
        recordOutcome(c, { name: def.name, kind: def.kind, outcome: "fail-closed", limit, remaining: null, source });
        throw new GatewayError("LIMITER_UNAVAILABLE", `The ${def.kind === "quota" ? "quota" : "rate limit"} "${def.name}" cannot be checked right now; try again shortly.`, {
          headers: { ...style.unknown(textsFor(limit)), "retry-after": "1" },
        });
      }
      recordOutcome(c, { name: def.name, kind: def.kind, outcome: "fail-open", limit, remaining: null, source });
      await next();
      style.failedOpen(c, textsFor(limit));
      return;
    }
    const texts = textsFor(limit);
    if (!allowed) {
      if (!def.dryRun) {
        recordOutcome(c, { name: def.name, kind: def.kind, outcome: "refused", limit, remaining: 0, source });
        throw new GatewayError(
          code,
          def.kind === "quota" ? `The quota "${def.name}" (${limit} per ${def.period}) is used up.` : `The rate limit "${def.name}" (${limit} per ${windowS}s) is exceeded.`,
          { headers: { ...style.refused(texts, remaining, resetMs), "retry-after": String(Math.max(1, secs(retryMs))) } },
        );
      }
      recordOutcome(c, { name: def.name, kind: def.kind, outcome: "dry-run-refused", limit, remaining: 0, source });
      console.log(JSON.stringify({ level: "info", msg: "limit would refuse (dry run)", requestId: c.get("requestId"), limit: def.name, code }));
      await next();
      style.admitted(c, texts, remaining, resetMs);
      // Always reported, even when a tighter limit's figures won the draft-06 RateLimit-* headers.
      applyHeader(c, "ratelimit-dry-run", `would-refuse; limit="${def.name}"; code=${code}`);
      return;
    }
    const outcome = recordOutcome(c, { name: def.name, kind: def.kind, outcome: "allowed", limit, remaining, source });
    await next();
    // A quota charges only what reaches the origin: a later plugin's refusal gives the token back.
    // The audit event (written after this, by the outer audit plugin) then shows the budget as it
    // really is, as the response's RateLimit-Remaining does: not one short.
    if (def.kind === "quota" && refusedBeforeOrigin(c) && returnLeased(s!, spentFrom, Date.now())) outcome.remaining = ++remaining;
    style.admitted(c, texts, remaining, resetMs);
  };
  limitRegistry.set(handler, def);
  return handler;
}
