// Bundles with esbuild (the version wrangler uses): the benchmark worker for workerd, and the
// same code for Node (key generation for seeding, the micro-benchmark's in-process apps).
import { build } from "esbuild";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..", "..");

/** The benchmark worker (bench/worker/entry.ts) as one ES module for workerd. */
export async function buildWorker(outDir) {
  const outfile = path.join(outDir, "bench-worker.mjs");
  await build({
    entryPoints: [path.join(root, "bench/worker/entry.ts")],
    outfile,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["browser", "module", "main"],
    external: ["cloudflare:*", "node:*"],
    logLevel: "error",
  });
  return outfile;
}

/** A TypeScript module of the project bundled for Node, then imported. */
export async function importForNode(outDir, entry, name) {
  const outfile = path.join(outDir, `${name}.node.mjs`);
  await build({
    entryPoints: [path.join(root, entry)],
    outfile,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    logLevel: "error",
    // No keepNames: its __name() wrappers would run per request and show up in the profile.
  });
  return import(`${outfile}?t=${Date.now()}`);
}
