import { Ratelimit } from "@upstash/ratelimit";
import { Redis } from "@upstash/redis/cloudflare";
import { DurableObject } from "cloudflare:workers";
import { Hono } from "hono";
import { createApp } from "../../worker/app";
import { auditQueueConsumer } from "../../worker/audit/handlers";
import type { Env } from "../../worker/env";
import { sanitizeRequestHeaders, sanitizeResponseHeaders } from "../../worker/gateway/headers";
import { rawPathOf } from "../../worker/gateway/upstream-url";
import { hexDigest } from "../../worker/lib/digest";
// A namespace import: an older tree built for --before may lack the call counter.
import * as engine from "../../worker/limits/engine";
import { microFetch } from "./micro-workerd";
import { gatewayScenarios } from "./scenarios";

// The rate-limit scenarios' LIMITER binding (bench/lib/servers.mjs binds it where a scenario needs it).
export { LimiterDurableObject } from "../../worker/limits/durable-object";

/**
 * The benchmark worker: one bundle, many workers in one workerd, told apart by BENCH_SCENARIO.
 *
 * - "bare": a bare Hono pass-through to the origin — the runtime's floor.
 * - any name in `gatewayScenarios`: the real gateway app (createApp) with that configuration.
 *
 * GET /__bench/stats answers how many requests and D1 statements this isolate has seen, so the
 * harness can report D1 queries per request at steady state without instrumenting the core, and
 * how many limiter backend calls failed (the harness refuses a measurement with any).
 */
interface BenchEnv extends Env {
  /** The "block-do" scenario's Durable Object (bench/run.mjs and bench/instructions.mjs bind it there only). */
  BLOCK_DO?: DurableObjectNamespace<BlockDurableObject>;
  BENCH_SCENARIO: string;
  BENCH_AUDIT_QUEUE?: string;
  /** Audit flush interval for the instruction counter's slow workerd (bench/worker/scenarios.ts). */
  BENCH_AUDIT_FLUSH_MS?: string;
  ORIGIN_URL: string;
  /** The origin credential the harness binds (the "block-sha-map-rewrite" scenario sends it). */
  ORIGIN_TOKEN?: string;
}

type Fetcher = (req: Request, env: BenchEnv, ctx: ExecutionContext) => Response | Promise<Response>;

const stats = { requests: 0, d1Statements: 0, auditSends: 0, auditMessages: 0 };

/** The audit Queue with a call counter: how many sendBatch calls (and messages) carry the load's events. */
function countingQueue(q: Queue): Queue {
  return {
    send: (body: unknown, opts?: QueueSendOptions) => {
      stats.auditSends++;
      stats.auditMessages++;
      return q.send(body, opts);
    },
    sendBatch: (messages: Iterable<MessageSendRequest>, opts?: QueueSendBatchOptions) => {
      const list = [...messages];
      stats.auditSends++;
      stats.auditMessages += list.length;
      return q.sendBatch(list, opts);
    },
  } as Queue;
}

/** D1 with a statement counter: every drizzle query goes through prepare(); batches are lists of those. */
function countingD1(db: D1Database): D1Database {
  return {
    prepare(query: string) {
      stats.d1Statements++;
      return db.prepare(query);
    },
    batch: (statements) => db.batch(statements),
    exec(query: string) {
      stats.d1Statements++;
      return db.exec(query);
    },
    dump: () => db.dump(),
    withSession: (c) => db.withSession(c),
  } as D1Database;
}

/** The bare pass-through's origin call (bareApp, blockApp): same path and query, redirects passed back. */
const toOrigin = (env: BenchEnv, req: Request, url: URL, headers: Headers) =>
  fetch(env.ORIGIN_URL + url.pathname + url.search, { method: req.method, headers, redirect: "manual" });

function bareApp(extraHeaders = -1): Fetcher {
  const app = new Hono<{ Bindings: BenchEnv }>();
  app.all("*", async (c) => {
    const url = new URL(c.req.url);
    let headers = c.req.raw.headers;
    // Diagnostics (bench/instructions.mjs): a copy of the headers, plus N more sent to the origin.
    if (extraHeaders >= 0) {
      headers = new Headers(headers);
      for (let i = 0; i < extraHeaders; i++) headers.set(`x-portcullis-extra-${i}`, "usr_0123456789abcdef");
    }
    return toOrigin(c.env, c.req.raw, url, headers);
  });
  return app.fetch as Fetcher;
}

/**
 * "floor": the bare pass-through plus only what any safe proxy must do per request, by hand with
 * the gateway's own helpers: strip hop-by-hop and spoofable request headers, bound the origin
 * call with a timeout, copy the response into a new Response and strip its hop-by-hop headers,
 * tag the request id.
 * No routing table, plugins or audit. floor ÷ bare is the runtime's price of safety; the gateway's
 * own overhead is what it adds on top of floor.
 */
function floorApp(
  without: { timeout?: boolean; requestCopy?: boolean; responseCopy?: boolean } = {},
  timeoutKind: "signal" | "controller" | "race" = "signal",
  responseKind: "gateway" | "two-copies" | "unsanitized" = "gateway",
): Fetcher {
  const app = new Hono<{ Bindings: BenchEnv }>();
  app.all("*", async (c) => {
    const url = c.req.url;
    let headers: Headers;
    if (without.requestCopy) headers = c.req.raw.headers;
    else {
      headers = sanitizeRequestHeaders(c.req.raw.headers);
      headers.set("x-request-id", "req_0123456789abcdef0123456789abcdef");
      headers.set("x-forwarded-proto", "http");
    }
    const q = url.indexOf("?");
    const init: RequestInit = { method: c.req.method, headers, redirect: "manual" };
    const target = c.env.ORIGIN_URL + rawPathOf(url) + (q === -1 ? "" : url.slice(q));
    let res: Response;
    if (without.timeout) res = await fetch(target, init);
    // The gateway's: AbortSignal.timeout.
    else if (timeoutKind === "signal") res = await fetch(target, { ...init, signal: AbortSignal.timeout(10_000) });
    // The same bound from an AbortController aborted by setTimeout (measured no cheaper: 2026-11-30-6).
    else if (timeoutKind === "controller") {
      const ac = new AbortController();
      setTimeout(() => ac.abort(new DOMException("timed out", "TimeoutError")), 10_000);
      res = await fetch(target, { ...init, signal: ac.signal });
    } else {
      // Headers only: a timer raced against the fetch and cleared when it answers (no signal).
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error("timed out")), 10_000)));
      try {
        res = await Promise.race([fetch(target, init), timeout]);
      } finally {
        if (timer !== undefined) clearTimeout(timer);
      }
    }
    if (without.responseCopy) return res;
    if (responseKind === "two-copies") {
      // What the gateway did before session 13: a cleaned copy of the headers, copied again by the Response constructor.
      const out = new Headers(res.headers);
      sanitizeResponseHeaders(out);
      out.set("x-request-id", "req_0123456789abcdef0123456789abcdef");
      return new Response(res.body, { status: res.status, statusText: res.statusText, headers: out });
    }
    // The gateway's: one copy by the Response constructor, cleaned in place.
    const copy = new Response(res.body, res);
    if (responseKind !== "unsanitized") sanitizeResponseHeaders(copy.headers);
    copy.headers.set("x-request-id", "req_0123456789abcdef0123456789abcdef");
    return copy;
  });
  return app.fetch as Fetcher;
}

/** "floor" and the floor without one of its parts each (bench/run.mjs runs them in every full run, closed loop). */
const floorVariants: Record<string, Parameters<typeof floorApp>[0]> = {
  floor: {},
  "floor-no-timeout": { timeout: true },
  "floor-no-request-copy": { requestCopy: true },
  "floor-no-response-copy": { responseCopy: true },
};
/** Diagnostic variants of the floor's response copy (opt-in scenarios): where its cost is. */
const floorResponses: Record<string, "two-copies" | "unsanitized"> = { "floor-response-two-copies": "two-copies", "floor-response-unsanitized": "unsanitized" };
/** Diagnostic variants of the floor's timeout (opt-in scenarios): how the bound is built. */
const floorTimeouts: Record<string, "controller" | "race"> = { "floor-timeout-controller": "controller", "floor-timeout-race": "race" };

/**
 * The building blocks issue #6 quotes as reference ("SHA-256 + in-isolate map lookup + header
 * rewrite 0.85; one Durable Object call per request 0.49; one @upstash/ratelimit call 0.29; one
 * Queue send 0.40"), each on top of the bare pass-through, written the plainest way: what each
 * costs against bare when Miniflare's subrequest hop is gone (bench/README.md, "Building blocks").
 * The quoted ratios were taken with the hop, which made bare ~1.4× dearer in throughput (1.8× in instructions).
 */
type Block = "sha-map-rewrite" | "map-rewrite" | "do" | "queue" | "upstash";

/** One counter per caller: the plainest "one Durable Object call per request". */
export class BlockDurableObject extends DurableObject {
  private n = 0;
  hit(): number {
    return ++this.n;
  }
}

function blockApp(block: Block): Fetcher {
  const known = new Map<string, number>();
  let limiter: Ratelimit | undefined;
  const app = new Hono<{ Bindings: BenchEnv }>();
  app.all("*", async (c) => {
    const url = new URL(c.req.url);
    const caller = c.req.header("authorization") ?? "anonymous";
    let headers: Headers = c.req.raw.headers;
    if (block === "sha-map-rewrite" || block === "map-rewrite") {
      // SHA-256 of the presented key on every request (or, "map-rewrite", never: the gateway
      // hashes a key once per isolate), the result looked up in an isolate map (filled on a miss,
      // as a cache is), and the credential swapped for the origin's.
      const id = block === "map-rewrite" ? caller : await hexDigest("SHA-256", caller);
      if (known.get(id) === undefined) known.set(id, known.size);
      headers = new Headers(headers);
      headers.set("authorization", `Bearer ${c.env.ORIGIN_TOKEN}`);
    } else if (block === "do") {
      const ns = c.env.BLOCK_DO!;
      await ns.get(ns.idFromName(caller)).hit();
    } else if (block === "queue") {
      await c.env.AUDIT_QUEUE!.send({ caller: caller.slice(-8), path: url.pathname, ts: Date.now() });
    } else {
      limiter ??= new Ratelimit({
        redis: new Redis({ url: c.env.UPSTASH_REDIS_REST_URL!, token: c.env.UPSTASH_REDIS_REST_TOKEN!, enableTelemetry: false }),
        limiter: Ratelimit.slidingWindow(1_000_000, "1 h"),
        analytics: false,
      });
      const { success, pending } = await limiter.limit(caller);
      c.executionCtx.waitUntil(pending);
      if (!success) return c.text("limited", 429);
    }
    return toOrigin(c.env, c.req.raw, url, headers);
  });
  return app.fetch as Fetcher;
}

/**
 * A Queue producer that serializes each batch (as the binding does before sending it) and drops
 * it. workerd has no bare structured-clone serializer, so structuredClone (serialize and
 * deserialize) stands in for the binding's "v8" encoding: an overestimate.
 */
function discardingQueue(): Queue {
  const serialize = (body: unknown) => void structuredClone(body);
  return {
    send: async (body: unknown) => serialize(body),
    sendBatch: async (messages: Iterable<MessageSendRequest>) => {
      for (const m of messages) serialize(m.body);
    },
  } as unknown as Queue;
}

/**
 * A Queue producer that sends the same number of messages per call through the real binding,
 * each a tiny body instead of its pack: what the send costs apart from its payload.
 */
function tinyPayloadQueue(q: Queue): Queue {
  return {
    send: (_body: unknown, opts?: QueueSendOptions) => q.send({ n: 1 }, opts),
    sendBatch: (messages: Iterable<MessageSendRequest>, opts?: QueueSendBatchOptions) =>
      q.sendBatch([...messages].map((m) => ({ body: { n: 1 }, contentType: m.contentType })), opts),
  } as Queue;
}

let app: Fetcher | undefined;
let benchEnv: BenchEnv | undefined;

export default {
  // The audit consumer is not bound in the benchmark (production runs it in separate
  // invocations; bench/audit-load.mjs measures it), so this only serves a manual setup.
  queue: (batch: MessageBatch<unknown>, env: BenchEnv) => auditQueueConsumer(batch, env),
  fetch(req: Request, env: BenchEnv, ctx: ExecutionContext) {
    if (req.url.endsWith("/__bench/stats")) {
      // Limiter backend failures: a failing limit fails open, which would pass for a fast one.
      let failures = 0;
      for (const n of engine.limiterFailures.values()) failures += n;
      const calls = (engine as { limiterCalls?: { count: number } }).limiterCalls;
      return Response.json({ ...stats, limiterFailures: failures, limiterCalls: calls?.count ?? 0 });
    }
    // The per-plugin micro-benchmark in workerd (bench/micro-workerd.mjs): its own loop, no load.
    if (env.BENCH_SCENARIO === "micro") return microFetch(req, env as unknown as Record<string, unknown>);
    stats.requests++;
    if (!app) {
      const scenario = env.BENCH_SCENARIO;
      if (scenario === "bare") app = bareApp();
      else if (scenario === "bare-copy") app = bareApp(0);
      else if (scenario === "bare-copy-4-headers") app = bareApp(4);
      else if (scenario in floorVariants) app = floorApp(floorVariants[scenario]);
      else if (scenario in floorTimeouts) app = floorApp({}, floorTimeouts[scenario]);
      else if (scenario in floorResponses) app = floorApp({}, "signal", floorResponses[scenario]);
      else if (scenario.startsWith("block-")) app = blockApp(scenario.slice("block-".length) as Block);
      else {
        const build = gatewayScenarios[scenario];
        if (!build) throw new Error(`unknown BENCH_SCENARIO "${scenario}"`);
        app = createApp(build({ auditFlushIntervalMs: env.BENCH_AUDIT_FLUSH_MS ? Number(env.BENCH_AUDIT_FLUSH_MS) : undefined })).fetch as Fetcher;
      }
      // One env object for the isolate's life, as the runtime gives; the core caches per env object.
      benchEnv = env.DB ? { ...env, DB: countingD1(env.DB) } : env;
      // The Queue's other side (Miniflare's broker) runs inside this workerd, so its CPU counts
      // as the gateway's; in production it is Cloudflare's service behind a subrequest. With
      // BENCH_AUDIT_QUEUE=discard, batches are encoded (as the binding would) and dropped: the
      // difference is the send and the broker's answer to it.
      if (env.BENCH_AUDIT_QUEUE === "discard" && benchEnv.AUDIT_QUEUE) benchEnv = { ...benchEnv, AUDIT_QUEUE: discardingQueue() };
      if (env.BENCH_AUDIT_QUEUE === "tiny" && benchEnv.AUDIT_QUEUE) benchEnv = { ...benchEnv, AUDIT_QUEUE: tinyPayloadQueue(benchEnv.AUDIT_QUEUE) };
      if (benchEnv.AUDIT_QUEUE) benchEnv = { ...benchEnv, AUDIT_QUEUE: countingQueue(benchEnv.AUDIT_QUEUE) };
    }
    return app(req, benchEnv!, ctx);
  },
} satisfies ExportedHandler<BenchEnv>;
