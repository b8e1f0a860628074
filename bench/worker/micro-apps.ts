import { Hono } from "hono";
import { createApp } from "../../worker/app";
import type { Env } from "../../worker/env";
import { sanitizeRequestHeaders, sanitizeResponseHeaders } from "../../worker/gateway/headers";
import { rawPathOf } from "../../worker/gateway/upstream-url";
import { generateApiKey, hashApiKey } from "../../worker/lib/api-key";
import { LimiterDurableObject } from "../../worker/limits/durable-object";
import { isolateOverrideCache } from "../../worker/limits/overrides";
import type { ResolvedIdentity } from "../../worker/services/identity";
import { isolateKeyCache } from "../../worker/services/key-cache";
import { BENCH_PERMISSION, gatewayWith, microChains } from "./scenarios";

/**
 * The micro-benchmark's apps, bundled for Node by bench/micro.mjs: the same createApp the Worker
 * runs, with plugin chains growing one plugin at a time, and a bare Hono pass-through.
 */
export type App = { fetch: (req: Request, env: Env, ctx: ExecutionContext) => Response | Promise<Response> };

export function bareApp(): App {
  const app = new Hono<{ Bindings: Env }>();
  app.all("*", async (c) => {
    const url = new URL(c.req.url);
    return fetch("http://origin.bench" + url.pathname + url.search, { method: c.req.method, headers: c.req.raw.headers, redirect: "manual" });
  });
  return app as unknown as App;
}

/**
 * The safe pass-through floor (as bench/worker/entry.ts's "floor"): bare plus only what any safe
 * proxy must do — strip hop-by-hop and spoofable request headers, bound the origin call with a
 * timeout, copy the response into a new Response and strip its hop-by-hop headers, tag the
 * request id. Its allocations ÷ bare's are what header hygiene alone costs in allocations.
 */
export function floorApp(): App {
  const app = new Hono<{ Bindings: Env }>();
  app.all("*", async (c) => {
    const url = c.req.url;
    const headers = sanitizeRequestHeaders(c.req.raw.headers);
    headers.set("x-request-id", "req_0123456789abcdef0123456789abcdef");
    headers.set("x-forwarded-proto", "http");
    const q = url.indexOf("?");
    const res = await fetch("http://origin.bench" + rawPathOf(url) + (q === -1 ? "" : url.slice(q)), { method: c.req.method, headers, redirect: "manual", signal: AbortSignal.timeout(10_000) });
    const out = new Response(res.body, res);
    sanitizeResponseHeaders(out.headers);
    out.headers.set("x-request-id", "req_0123456789abcdef0123456789abcdef");
    return out;
  });
  return app as unknown as App;
}

/** Chains by name, in order of growth: "core" (no plugins), then one more plugin each step. */
export function gatewayApps(): { name: string; onTopOf?: string; app: App }[] {
  return microChains().map(({ name, onTopOf, plugins }) => ({ name, onTopOf, app: createApp(gatewayWith(plugins, "http://origin.bench", true)) as unknown as App }));
}

/**
 * A LIMITER namespace for Node: the real LimiterDurableObject class (its counting rules and
 * storage calls), one instance per name, storage in a Map. What it leaves out is the RPC hop and
 * the storage's durability, i.e. the backend's cost — which a warm subject does not pay (it
 * spends leased tokens); the micro-benchmark measures the plugin's own per-request path.
 */
export function memoryLimiterNamespace(): DurableObjectNamespace {
  const objects = new Map<string, LimiterDurableObject>();
  const kvOf = () => {
    const m = new Map<string, unknown>();
    return { get: (k: string) => m.get(k), put: (k: string, v: unknown) => void m.set(k, structuredClone(v)), delete: (k: string) => m.delete(k) };
  };
  return {
    idFromName: (name: string) => ({ name, toString: () => name }),
    get(id: { name: string }) {
      let o = objects.get(id.name);
      if (!o) objects.set(id.name, (o = new LimiterDurableObject({ storage: { kv: kvOf() } } as unknown as DurableObjectState, {} as never)));
      return o;
    },
  } as unknown as DurableObjectNamespace;
}

/**
 * Puts `n` keys in the isolate cache as a warm isolate has them, so the measured loop never
 * touches D1 (the micro-benchmark has no D1; a read would fail loudly).
 */
export async function warmKeys(n: number, ttlMs: number): Promise<string[]> {
  const keys: string[] = [];
  const now = Date.now();
  for (let i = 0; i < n; i++) {
    const { key, start } = generateApiKey();
    const identity: ResolvedIdentity = {
      authMethod: "api-key",
      user: { id: `usr_micro${i}`, name: `micro-${i}`, group: "internal", status: "active", expiresAt: null, allowedIps: null },
      key: { id: `key_micro${i}`, name: "micro", start, expiresAt: null, revokedAt: null, permissions: null },
      roles: ["bench-reader"],
      permissions: [BENCH_PERMISSION],
    };
    isolateKeyCache.set(await hashApiKey(key), identity, ttlMs, now);
    keys.push(key);
  }
  // No limit overrides (the micro-benchmark has no D1 to read them from). An older tree built for
  // --before has no snapshot to prime (and no rate-limit chain that would read it).
  (isolateOverrideCache as { prime?: typeof isolateOverrideCache.prime }).prime?.({ users: new Map(), roles: new Map(), empty: true }, ttlMs, now);
  return keys;
}
