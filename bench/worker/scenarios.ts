import { audit } from "../../plugins/audit";
import { authorize } from "../../plugins/authorize";
import { headers } from "../../plugins/headers";
import { jwtAuth } from "../../plugins/jwt-auth";
import { keyAuth } from "../../plugins/key-auth";
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
 * The default pipeline as the issue defines it: audit (first, as gateway.config.ts has it),
 * key-auth (isolate cache), authorize, header rewriting with an injected origin secret.
 */
export function defaultPlugins(withSecret = true): PluginInstance[] {
  return [audit(), keyAuth(), authorize(), headerRewrite(withSecret)];
}

/** JWT instead of a key: HS256 tokens whose `sub` is the proxy user's id. */
export function jwtPlugins(): PluginInstance[] {
  return [audit(), jwtAuth({ algorithms: ["HS256"], secretFromEnv: "JWT_SECRET", userCacheSeconds: 60 }), authorize(), headerRewrite(true)];
}

/**
 * The micro-benchmark's chains, growing by one plugin per step from "core" (requestId, services,
 * path guard, route binding, forwarder; no plugins) to the full default pipeline, then each
 * further plugin on top of it. The CPU and allocations a plugin adds are one step's difference.
 */
export function microChains(): { name: string; plugins: PluginInstance[] }[] {
  const chains: { name: string; plugins: PluginInstance[] }[] = [{ name: "core", plugins: [] }];
  const defaults = defaultPlugins(false);
  defaults.forEach((p, i) => chains.push({ name: `+${p.name}`, plugins: defaults.slice(0, i + 1) }));
  return chains;
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
    routes: [{ name: "bench", path: "/api/*", methods: ["GET"], upstream: "origin", permission: BENCH_PERMISSION }],
  });
}

/**
 * Gateway configurations by scenario name (the worker's BENCH_SCENARIO binding). "cold" is the
 * default config on a worker whose caches have a TTL of 0 (see bench/run.mjs), so every request
 * resolves its key and its secret in D1. Scenarios for further plugins go here.
 */
export const gatewayScenarios: Record<string, () => CompiledGateway> = {
  default: () => gatewayWith(defaultPlugins(), "http://127.0.0.1:9", false),
  // The gateway with no plugins: request id, path guard, routing, route binding, forwarder.
  core: () => gatewayWith([], "http://127.0.0.1:9", false),
  cold: () => gatewayWith(defaultPlugins(), "http://127.0.0.1:9", false),
  jwt: () => gatewayWith(jwtPlugins(), "http://127.0.0.1:9", false),
};
