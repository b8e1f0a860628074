// The deployed bundle: its size as `wrangler deploy --dry-run` reports it, and the top-level
// start-up work (evaluating the module once, as an isolate does before its first request).
import { execFileSync, spawnSync } from "node:child_process";
import { buildSync } from "esbuild";
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { median } from "./stats.mjs";

const root = path.resolve(import.meta.dirname, "..", "..");

export function measureBundle(scratch, cpus) {
  const outDir = path.join(scratch, "dist");
  mkdirSync(outDir, { recursive: true });
  const out = execFileSync(process.execPath, [path.join(root, "scripts/wrangler.mjs"), "deploy", "--dry-run", "--outdir", outDir], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  // "Total Upload: 1157.41 KiB / gzip: 203.05 KiB"
  const m = /Total Upload:\s*([\d.]+)\s*KiB\s*\/\s*gzip:\s*([\d.]+)\s*KiB/.exec(out);
  const file = path.join(outDir, "index.js");
  const rawBytes = m ? Math.round(Number(m[1]) * 1024) : statSync(file).size;
  const gzipBytes = m ? Math.round(Number(m[2]) * 1024) : gzipSync(readFileSync(file)).length;

  // ES modules are all compiled and linked before any of them runs, so a module imported before
  // the bundle and one imported after it bracket exactly the bundle's top-level evaluation.
  writeFileSync(path.join(outDir, "t0.mjs"), "globalThis.__t0 = performance.now();\n");
  writeFileSync(path.join(outDir, "t1.mjs"), "process.stdout.write(String(performance.now() - globalThis.__t0));\n");
  writeFileSync(path.join(outDir, "startup.mjs"), 'import "./t0.mjs";\nimport "./index.js";\nimport "./t1.mjs";\n');
  // The bundle imports `cloudflare:workers` (the limiter's Durable Object base class), which Node
  // does not have: a loader hook stubs it, registered before the timed imports start. Without
  // it the import failed and the empty output read as "0.0 ms" (the 2026-11-30-2 results).
  writeFileSync(
    path.join(outDir, "cloudflare-stub.mjs"),
    `import { register } from "node:module";
const STUB = "export class DurableObject { constructor(ctx, env) { this.ctx = ctx; this.env = env; } } export class WorkerEntrypoint {} export class RpcTarget {} export const env = {};";
register("data:text/javascript," + encodeURIComponent(\`export async function resolve(s, c, next) { return s.startsWith("cloudflare:") ? { url: "data:text/javascript," + encodeURIComponent(\${JSON.stringify(STUB)}), shortCircuit: true } : next(s, c); }\`));
`,
  );
  const evalMs = (entry) => {
    const samples = [];
    const argv = ["--import", path.join(outDir, "cloudflare-stub.mjs"), entry];
    for (let i = 0; i < 7; i++) {
      const r = spawnSync("taskset", ["-c", cpus, process.execPath, ...argv], { encoding: "utf8" });
      const r2 = r.error ? spawnSync(process.execPath, argv, { encoding: "utf8" }) : r;
      const ms = Number(r2.stdout);
      if (r2.status !== 0 || r2.stdout.trim() === "" || !Number.isFinite(ms)) throw new Error(`start-up measurement failed: ${r2.stderr || r2.stdout}`);
      samples.push(ms);
    }
    return samples;
  };
  const samples = evalMs(path.join(outDir, "startup.mjs"));

  // The floor under it: zod (which @hono/zod-openapi re-exports whole, as the core imports it)
  // evaluated alone, bundled and minified the same way.
  buildSync({
    stdin: { contents: 'import { z } from "@hono/zod-openapi";\nexport default z;\n', resolveDir: root, loader: "js" },
    bundle: true,
    format: "esm",
    platform: "browser",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["browser", "module", "main"],
    minify: true,
    outfile: path.join(outDir, "zod-only.js"),
    logLevel: "error",
  });
  writeFileSync(path.join(outDir, "startup-zod.mjs"), 'import "./t0.mjs";\nimport "./zod-only.js";\nimport "./t1.mjs";\n');
  const zodSamples = evalMs(path.join(outDir, "startup-zod.mjs"));
  return {
    rawBytes,
    gzipBytes,
    wranglerReported: Boolean(m),
    startupMs: median(samples),
    startupSamples: samples,
    zodOnlyMs: median(zodSamples),
    zodOnlySamples: zodSamples,
    startupHow: "Node V8, module evaluation only, median of 7 fresh processes",
  };
}
