// The deployed bundle: its size as `wrangler deploy --dry-run` reports it, and the top-level
// start-up work (evaluating the module once, as an isolate does before its first request).
import { execFileSync, spawnSync } from "node:child_process";
import { build } from "esbuild";
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { median } from "./stats.mjs";

const root = path.resolve(import.meta.dirname, "..", "..");

/**
 * wrangler.toml's import specifiers aliased by exact match, as wrangler's alias plugin does: zod's
 * JSON Schema generator and drizzle's Postgres enum, imported by relative paths that esbuild's own
 * `alias` option refuses.
 */
const ZOD_JSON_SCHEMA = path.join(root, "worker/vendor/zod-json-schema.js");
const RELATIVE_ALIASES = {
  "../core/json-schema-processors.js": ZOD_JSON_SCHEMA,
  "../core/to-json-schema.js": ZOD_JSON_SCHEMA,
  "../pg-core/columns/enum.js": path.join(root, "worker/vendor/drizzle-pg-enum.js"),
};
const relativeAliases = {
  name: "wrangler-alias",
  setup(b) {
    b.onResolve({ filter: /^\.\.\// }, (a) => (Object.hasOwn(RELATIVE_ALIASES, a.path) ? { path: RELATIVE_ALIASES[a.path] } : undefined));
  },
};

/** esbuild options that build as `wrangler deploy` builds this Worker: minified ESM for workerd, zod aliased. */
const WRANGLER_LIKE = {
  bundle: true,
  format: "esm",
  platform: "browser",
  conditions: ["workerd", "worker", "browser"],
  mainFields: ["browser", "module", "main"],
  alias: { zod: "./worker/vendor/zod.js", "@asteasolutions/zod-to-openapi": "./worker/vendor/zod-to-openapi.js" },
  plugins: [relativeAliases],
  external: ["cloudflare:*"],
  minify: true,
  logLevel: "error",
};

/** The fixed stack, each library used once (see measureBundle). */
const STACK_FLOOR = `
import { Hono } from "hono";
import { OpenAPIHono, z } from "@hono/zod-openapi";
import { drizzle } from "drizzle-orm/d1";
import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { HttpClient } from "./worker/vendor/upstash-http.js";
const users = sqliteTable("users", { id: text("id").primaryKey(), n: integer("n") });
const options = z.strictObject({ limit: z.number().int().min(0).default(1), name: z.string().default("x") });
const parsed = options.parse({ limit: 3 });
const app = new Hono();
app.get("/", (c) => c.json({ parsed, table: String(users), redis: typeof HttpClient, db: typeof drizzle, openapi: typeof OpenAPIHono }));
export default app;
`;

export async function measureBundle(scratch, cpus) {
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
  /** The start-up of another module in outDir (`name`.js), bracketed the same way. */
  const startupOf = (name) => {
    writeFileSync(path.join(outDir, `startup-${name}.mjs`), `import "./t0.mjs";\nimport "./${name}.js";\nimport "./t1.mjs";\n`);
    return evalMs(path.join(outDir, `startup-${name}.mjs`));
  };

  // The floor under it: the fixed stack alone (Hono, @hono/zod-openapi with zod and
  // zod-to-openapi, drizzle's D1 driver, @upstash/redis's HTTP client), each used once — a table, one schema
  // parsed, one route — bundled and minified as wrangler does (zod and zod-to-openapi aliased to
  // the same vendored builds, the latter a run-time stand-in for the package). No gateway code: what
  // no trimming of ours can take off the bundle or the start-up.
  await build({ ...WRANGLER_LIKE, stdin: { contents: STACK_FLOOR, resolveDir: root, loader: "ts" }, outfile: path.join(outDir, "stack-floor.js") });
  const stackSamples = startupOf("stack-floor");
  const stackFloor = {
    what: "Hono, @hono/zod-openapi + zod, drizzle D1, @upstash/redis's HTTP client",
    gzipBytes: gzipSync(readFileSync(path.join(outDir, "stack-floor.js"))).length,
    startupMs: median(stackSamples),
    startupSamples: stackSamples,
  };
  // Between the two: the gateway itself with its admin API and dashboard left out (worker/app.ts
  // and worker/worker.ts get empty stand-ins for ./admin and ./dashboard), built as wrangler
  // builds the Worker. What is left is the gateway's own (config, plugins, env, db schema). The
  // admin API and dashboard are built on their first request, so this should match the full
  // figure; a gap means something of theirs runs at module load again.
  await build({
    ...WRANGLER_LIKE,
    entryPoints: [path.join(root, "worker/index.ts")],
    outfile: path.join(outDir, "no-admin.js"),
    plugins: [
      relativeAliases,
      {
        name: "no-admin-ui",
        setup(b) {
          b.onResolve({ filter: /^\.\/(admin|dashboard)$/ }, (a) =>
            /worker[\\/](app|worker)\.ts$/.test(a.importer) ? { path: a.path, namespace: "no-admin-ui" } : undefined,
          );
          b.onLoad({ filter: /.*/, namespace: "no-admin-ui" }, () => ({
            contents: 'import { Hono } from "hono"; export const createAdminApp = () => new Hono(); export const createDashboard = () => new Hono(); export const dashboardScheduled = async () => {};',
            resolveDir: root,
            loader: "js",
          }));
        },
      },
    ],
  });
  const noAdminSamples = startupOf("no-admin");

  return {
    rawBytes,
    gzipBytes,
    wranglerReported: Boolean(m),
    noAdminUi: { startupMs: median(noAdminSamples), startupSamples: noAdminSamples, gzipBytes: gzipSync(readFileSync(path.join(outDir, "no-admin.js"))).length },
    startupMs: median(samples),
    startupSamples: samples,
    stackFloor,
    startupHow: "Node V8, module evaluation only, median of 7 fresh processes",
  };
}
