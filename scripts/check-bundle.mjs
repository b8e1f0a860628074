#!/usr/bin/env node
// Loads the bundle `wrangler deploy --dry-run --outdir dist` wrote, so its module-level code runs:
// that is where gateway.config.ts is validated and compiled (defineGateway). `wrangler deploy
// --dry-run` only bundles, so without this step an invalid route or plugin option would pass the
// deploy check and fail only when the Worker starts. The bundle is plain ESM (Hono, drizzle, zod,
// jose): Node can evaluate its top level without the Workers runtime.
import { pathToFileURL } from "node:url";
import path from "node:path";

const bundle = path.resolve(process.argv[2] ?? "dist/index.js");
try {
  const mod = await import(pathToFileURL(bundle).href);
  if (typeof mod.default?.fetch !== "function") throw new Error(`${bundle} has no default export with fetch()`);
  console.log(`bundle ok: ${path.relative(process.cwd(), bundle)} loads and gateway.config.ts compiles`);
} catch (err) {
  console.error(`bundle check failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
