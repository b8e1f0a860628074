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
// through a new import path, say) fails the build instead of slowing every isolate's start.
// The benchmark reports the size against its 150 KB target (bench/results/). The budget sits
// ~12 KiB above today's ~163 KiB: room for ordinary growth, none for a regression like the locales
// (+39 KiB) or zod's compiler (+12 KiB) coming back.
const BUDGET_GZIP_KIB = 175;
const gzipKiB = gzipSync(readFileSync(bundle)).length / 1024;
if (gzipKiB > BUDGET_GZIP_KIB) {
  console.error(`bundle check failed: ${gzipKiB.toFixed(1)} KiB gzip is over the ${BUDGET_GZIP_KIB} KiB budget (scripts/check-bundle.mjs)`);
  process.exit(1);
}

try {
  const mod = await import(pathToFileURL(bundle).href);
  if (typeof mod.default?.fetch !== "function") throw new Error(`${bundle} has no default export with fetch()`);
  console.log(`bundle ok: ${path.relative(process.cwd(), bundle)} loads and gateway.config.ts compiles; ${gzipKiB.toFixed(1)} KiB gzip`);
} catch (err) {
  console.error(`bundle check failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
