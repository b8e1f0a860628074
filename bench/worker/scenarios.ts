import { authorize } from "../../plugins/authorize";
import { keyAuth } from "../../plugins/key-auth";
import { defineGateway } from "../../worker/gateway/config";
import type { CompiledGateway } from "../../worker/gateway/types";
import type { PluginInstance } from "../../worker/gateway/types";

/** Permission every benchmark key's role grants and every benchmark route requires. */
export const BENCH_PERMISSION = "bench:read";

/**
 * The default pipeline as the issue defines it: key-auth (isolate cache), authorize, and the
 * forwarder's origin-secret injection. Plugins that land later (header rewriting, audit) join
 * here, so the "default" scenario always measures what a default deploy runs.
 */
export function defaultPlugins(): PluginInstance[] {
  return [keyAuth(), authorize()];
}

/**
 * The micro-benchmark's chains, growing by one plugin per step from "core" (requestId, services,
 * path guard, route binding, forwarder; no plugins) to the full default pipeline, then each
 * further plugin on top of it. The CPU and allocations a plugin adds are one step's difference.
 */
export function microChains(): { name: string; plugins: PluginInstance[] }[] {
  const chains: { name: string; plugins: PluginInstance[] }[] = [{ name: "core", plugins: [] }];
  const defaults = defaultPlugins();
  defaults.forEach((p, i) => chains.push({ name: `+${p.name}`, plugins: defaults.slice(0, i + 1) }));
  return chains;
}

/** A gateway with one wildcard route to the benchmark origin and the given global chain. */
function gatewayWith(plugins: PluginInstance[]): CompiledGateway {
  return defineGateway({
    upstreams: {
      origin: {
        // Replaced by ORIGIN_URL (the harness's origin); this default is never contacted.
        url: "http://127.0.0.1:9",
        urlFromEnv: "ORIGIN_URL",
        credential: { header: "Authorization", prefix: "Bearer ", fromEnv: "ORIGIN_TOKEN" },
        timeoutMs: 10_000,
      },
    },
    plugins,
    routes: [{ name: "bench", path: "/api/*", methods: ["GET"], upstream: "origin", permission: BENCH_PERMISSION }],
  });
}

/**
 * Gateway configurations by scenario name (the worker's BENCH_SCENARIO binding). "cold" is the
 * default config on a worker whose key cache TTL is 0, so every request resolves its key in D1.
 * Scenarios for plugins that exist are added here (on top of the default pipeline).
 */
export const gatewayScenarios: Record<string, () => CompiledGateway> = {
  default: () => gatewayWith(defaultPlugins()),
  cold: () => gatewayWith(defaultPlugins()),
};
