#!/usr/bin/env node
// Loads the bundle `wrangler deploy --dry-run --outdir dist` wrote, so its module-level code runs:
// that is where gateway.config.ts is validated and compiled (defineGateway). `wrangler deploy
// --dry-run` only bundles, so without this step an invalid route or plugin option would pass the
// deploy check and fail only when the Worker starts. The bundle is plain ESM (Hono, drizzle, zod,
// jose): Node can evaluate its top level without the Workers runtime.
import { register } from "node:module";
import { pathToFileURL } from "node:url";
import path from "node:path";
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

// The bundle imports the runtime's own modules (`cloudflare:workers`, for the limiter's Durable
// Object base class). Node has none: stub them, since only the bundle's top level runs here.
const STUB = "export class DurableObject { constructor(ctx, env) { this.ctx = ctx; this.env = env; } } export class WorkerEntrypoint {} export class RpcTarget {} export const env = {};";
const HOOKS = `export async function resolve(specifier, context, next) {
  if (specifier.startsWith("cloudflare:")) return { url: "data:text/javascript," + encodeURIComponent(${JSON.stringify(STUB)}), shortCircuit: true };
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(HOOKS)}`);

const bundle = path.resolve(process.argv[2] ?? "dist/index.js");

// A size budget, so a dependency change that regrows the bundle (zod's locales coming back
// through a new import path, say, or @upstash/redis's whole Redis class) fails the build instead of
// slowing every isolate's start. The budget is the benchmark's target itself (#6: ≤ 150 KB gzip,
// bench/results/): today's bundle is ~141.3 KB (138.0 KiB), so there is ~8.7 KB of room (the
// stubs aliased in wrangler.toml made it: bench/README.md, "Bundle"); growing past the target
// needs a decision, not a silent regression. A stub alias that stops matching after a zod or
// drizzle upgrade brings its ~1–6 KB back, and this check is what notices.
const BUDGET_GZIP_BYTES = 150_000;
const gzipBytes = gzipSync(readFileSync(bundle)).length;
if (gzipBytes > BUDGET_GZIP_BYTES) {
  console.error(`bundle check failed: ${(gzipBytes / 1000).toFixed(1)} KB gzip is over the ${BUDGET_GZIP_BYTES / 1000} KB budget (scripts/check-bundle.mjs)`);
  process.exit(1);
}

try {
  const mod = await import(pathToFileURL(bundle).href);
  if (typeof mod.default?.fetch !== "function") throw new Error(`${bundle} has no default export with fetch()`);
  console.log(`bundle ok: ${path.relative(process.cwd(), bundle)} loads and gateway.config.ts compiles; ${(gzipBytes / 1000).toFixed(1)} KB gzip (${(gzipBytes / 1024).toFixed(1)} KiB)`);
} catch (err) {
  console.error(`bundle check failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
