import { audit } from "../../plugins/audit";
import { authorize } from "../../plugins/authorize";
import { headers } from "../../plugins/headers";
import { jwtAuth } from "../../plugins/jwt-auth";
import { keyAuth } from "../../plugins/key-auth";
import { rateLimit } from "../../plugins/rate-limit";
import { defineGateway } from "../../worker/gateway/config";
import type { CompiledGateway, PluginInstance } from "../../worker/gateway/types";

/** Permission every benchmark key's role grants and every benchmark route requires. */
export const BENCH_PERMISSION = "bench:read";
/** Name of the origin secret the harness stores (PUT /admin/v1/secrets/ORIGIN_TOKEN). */
export const BENCH_SECRET = "ORIGIN_TOKEN";

/**
 * The header rewriting of the default pipeline: the origin credential from the encrypted secret
 * store, plus an identity header. The micro-benchmark has no D1, so it renders an identity
 * header only (`withSecret: false`) and lets the forwarder inject the credential instead.
 */
const headerRewrite = (withSecret: boolean): PluginInstance =>
  headers({
    request: {
      set: { ...(withSecret ? { authorization: `Bearer {secret:${BENCH_SECRET}}` } : {}), "x-tenant": "{proxyUser.group}" },
      remove: ["cookie"],
    },
    response: { remove: ["server"] },
  });

/**
 * Harness settings a scenario can take from its worker's bindings. `auditFlushIntervalMs`: the
 * instruction counter (bench/instructions.mjs) runs workerd under valgrind, ~50 times slower, where
 * the default 1 s would flush every batch by its timer long before it holds 100 events; a longer
 * interval keeps the batches as full as at saturation.
 */
export interface ScenarioOptions {
  auditFlushIntervalMs?: number;
}

const auditPlugin = (opts: ScenarioOptions): PluginInstance => audit(opts.auditFlushIntervalMs ? { flushIntervalMs: opts.auditFlushIntervalMs } : {});

/**
 * The default pipeline as the issue defines it: audit (first, as gateway.config.ts has it),
 * key-auth (isolate cache), authorize, header rewriting with an injected origin secret.
 */
export function defaultPlugins(withSecret = true, opts: ScenarioOptions = {}): PluginInstance[] {
  return [auditPlugin(opts), keyAuth(), authorize(), headerRewrite(withSecret)];
}

/**
 * The rate limit of the rate-limit scenarios: per proxy user, far from its limit during the run
 * (1,000 users share the load, so each sends a few requests a second — some 6,000 an hour —
 * against 1,000,000 an hour): leases of 100 tokens (`leaseMax: "auto"` = limit/20, capped at
 * 100) spent in the isolate, a backend call per ~100 requests of a user. An hour's window, so a
 * lease ends when it is spent, not at a window boundary: with a one-minute window the average
 * is the same (a user's ~100 requests a minute fit one lease) but every user re-leases in the
 * same second after each minute boundary — bench/README.md says what that burst costs.
 * `near: true` is a subject close to its limit: grants shrink to one token (a quarter of what is
 * left, down to 1), which `leaseMax: 1` forces for the whole run — a backend call per request.
 */
export const BENCH_RATE_LIMIT = { name: "bench", limit: 1_000_000, window: "1h" } as const;

export function rateLimitPlugin(backend: "durable-object" | "upstash", near = false): PluginInstance {
  return rateLimit({ ...BENCH_RATE_LIMIT, backend, ...(near ? { leaseMax: 1 } : {}) });
}

/** The default pipeline with a rate limit after authorize (a forbidden call spends nothing), before header rewriting. */
export function rateLimitedPlugins(backend: "durable-object" | "upstash", near = false, withSecret = true, opts: ScenarioOptions = {}): PluginInstance[] {
  const [auditFirst, auth, authz, rewrite] = defaultPlugins(withSecret, opts);
  return [auditFirst!, auth!, authz!, rateLimitPlugin(backend, near), rewrite!];
}

/**
 * Issue #4's own reading of "the limited pipeline": a proxy user identified (key-auth, warm) and
 * limited, nothing else — what the leased limiter costs over the plainest pipeline that has a
 * subject to limit. `minimalPlugins()` alone ("keyauth") is its baseline. The #6 rows put the same
 * limit on the whole default pipeline (rateLimitedPlugins).
 */
export function minimalPlugins(backend?: "durable-object" | "upstash"): PluginInstance[] {
  return backend ? [keyAuth(), rateLimitPlugin(backend)] : [keyAuth()];
}

/** JWT instead of a key: HS256 tokens whose `sub` is the proxy user's id. `verifiedCacheSeconds: 0` verifies every request. */
export function jwtPlugins(opts: ScenarioOptions = {}, verifiedCacheSeconds?: number): PluginInstance[] {
  return [auditPlugin(opts), jwtAuth({ algorithms: ["HS256"], secretFromEnv: "JWT_SECRET", userCacheSeconds: 60, ...(verifiedCacheSeconds === undefined ? {} : { verifiedCacheSeconds }) }), authorize(), headerRewrite(true)];
}

/**
 * The micro-benchmark's chains, growing by one plugin per step from "core" (requestId, services,
 * path guard, route binding, forwarder; no plugins) to the full default pipeline, then each
 * further plugin on top of it. The CPU and allocations a plugin adds are one step's difference.
 */
export function microChains(): MicroChain[] {
  const chains: MicroChain[] = [{ name: "core", plugins: [] }];
  const defaults = defaultPlugins(false);
  defaults.forEach((p, i) => chains.push({ name: `+${p.name}`, plugins: defaults.slice(0, i + 1) }));
  const full = chains[chains.length - 1]!.name;
  // Further plugins, each on top of the full default pipeline (its step is measured from there).
  // The Durable Object runs in-process in Node (bench/worker/micro-apps.ts): the same class, no RPC.
  chains.push({ name: "+rate-limit", onTopOf: full, plugins: rateLimitedPlugins("durable-object", false, false) });
  return chains;
}

/** A micro-benchmark chain; `onTopOf` names the chain a further plugin's step is measured from. */
export interface MicroChain {
  name: string;
  plugins: PluginInstance[];
  onTopOf?: string;
}

/** A gateway with one wildcard route to the benchmark origin and the given global chain. */
export function gatewayWith(plugins: PluginInstance[], originUrl: string, forwarderCredential: boolean): CompiledGateway {
  return defineGateway({
    upstreams: {
      origin: {
        url: originUrl,
        // Replaced by ORIGIN_URL (the harness's origin) in workerd.
        urlFromEnv: "ORIGIN_URL",
        // Without it, the headers plugin injects the credential from the secret store.
        ...(forwarderCredential ? { credential: { header: "Authorization", prefix: "Bearer ", fromEnv: "ORIGIN_TOKEN" } } : {}),
        timeoutMs: 10_000,
      },
    },
    plugins,
    // A permission only where authorize enforces it (the gateway refuses one nothing enforces).
    routes: [{ name: "bench", path: "/api/*", methods: ["GET"], upstream: "origin", ...(plugins.some((p) => p.name === "authorize") ? { permission: BENCH_PERMISSION } : {}) }],
  });
}

/**
 * Gateway configurations by scenario name (the worker's BENCH_SCENARIO binding). "cold" is the
 * default config on a worker whose caches have a TTL of 0 (see bench/run.mjs), so every request
 * resolves its key and its secret in D1. Scenarios for further plugins go here.
 */
export const gatewayScenarios: Record<string, (opts?: ScenarioOptions) => CompiledGateway> = {
  default: (o) => gatewayWith(defaultPlugins(true, o), "http://127.0.0.1:9", false),
  // The gateway with no plugins: request id, path guard, routing, route binding, forwarder.
  core: () => gatewayWith([], "http://127.0.0.1:9", false),
  cold: (o) => gatewayWith(defaultPlugins(true, o), "http://127.0.0.1:9", false),
  // The default pipeline grown one plugin at a time (diagnostic scenarios of bench/run.mjs).
  "chain-audit": (o) => gatewayWith(defaultPlugins(true, o).slice(0, 1), "http://127.0.0.1:9", false),
  "chain-key-auth": (o) => gatewayWith(defaultPlugins(true, o).slice(0, 2), "http://127.0.0.1:9", false),
  "chain-authorize": (o) => gatewayWith(defaultPlugins(true, o).slice(0, 3), "http://127.0.0.1:9", false),
  jwt: (o) => gatewayWith(jwtPlugins(o), "http://127.0.0.1:9", false),
  "jwt-verify-each": (o) => gatewayWith(jwtPlugins(o, 0), "http://127.0.0.1:9", false),
  "ratelimit-do": (o) => gatewayWith(rateLimitedPlugins("durable-object", false, true, o), "http://127.0.0.1:9", false),
  "ratelimit-upstash": (o) => gatewayWith(rateLimitedPlugins("upstash", false, true, o), "http://127.0.0.1:9", false),
  keyauth: () => gatewayWith(minimalPlugins(), "http://127.0.0.1:9", false),
  "limit-do": () => gatewayWith(minimalPlugins("durable-object"), "http://127.0.0.1:9", false),
  "limit-upstash": () => gatewayWith(minimalPlugins("upstash"), "http://127.0.0.1:9", false),
  "ratelimit-do-near": (o) => gatewayWith(rateLimitedPlugins("durable-object", true, true, o), "http://127.0.0.1:9", false),
  "ratelimit-upstash-near": (o) => gatewayWith(rateLimitedPlugins("upstash", true, true, o), "http://127.0.0.1:9", false),
};
