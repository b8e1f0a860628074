import { audit } from "../plugins/audit";
import { authorize } from "../plugins/authorize";
import { keyAuth } from "../plugins/key-auth";
import { defineGateway } from "../worker/gateway/config";
import { createWorker } from "../worker/worker";

/**
 * The gateway the audit load script runs: the same chain on three routes — audited through the
 * Queue (`/q/*`), audited straight to D1 (`/d/*`) and not audited (`/off/*`), so the script
 * can report both event loss and what auditing costs.
 */
export default createWorker(
  defineGateway({
    upstreams: { origin: { url: "http://127.0.0.1:8951", urlFromEnv: "BENCH_ORIGIN_URL" } },
    plugins: [audit(), keyAuth(), authorize()],
    routes: [
      { name: "queued", path: "/q/*", methods: ["GET"], upstream: "origin", permission: "bench:read" },
      { name: "direct", path: "/d/*", methods: ["GET"], upstream: "origin", permission: "bench:read", plugins: [audit({ sink: "d1" })] },
      { name: "off", path: "/off/*", methods: ["GET"], upstream: "origin", permission: "bench:read", disablePlugins: ["audit"] },
    ],
  }),
);

// wrangler.toml (which the dry-run bundle reads) binds the limiter Durable Object: its class must
// be exported by the entry, even though these routes use no limits.
export { LimiterDurableObject } from "../worker/limits/durable-object";
