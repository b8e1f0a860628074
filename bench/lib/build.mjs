// Bundles with esbuild (the version wrangler uses): the benchmark worker for workerd, and the
// same code for Node (key generation for seeding, the micro-benchmark's in-process apps).
import { execFileSync } from "node:child_process";
import { appendFileSync, cpSync, mkdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { build } from "esbuild";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..", "..");

/**
 * The benchmark worker (bench/worker/entry.ts) as one ES module for workerd. `tree` is the source
 * root: this checkout, or an older revision's tree for before/after runs.
 */
export async function buildWorker(outDir, tree = root, name = "bench-worker") {
  const outfile = path.join(outDir, `${name}.mjs`);
  await build({
    entryPoints: [path.join(tree, "bench/worker/entry.ts")],
    outfile,
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["browser", "module", "main"],
    external: ["cloudflare:*", "node:*"],
    // The deployed Worker's zod and zod-to-openapi (wrangler.toml [alias]), this checkout's for an
    // older tree too: the shims reach into node_modules by relative path, and only this checkout has one.
    alias: { zod: path.join(root, "worker/vendor/zod.js"), "@asteasolutions/zod-to-openapi": path.join(root, "worker/vendor/zod-to-openapi.js") },
    logLevel: "error",
  });
  return outfile;
}

// Node has no `cloudflare:*` modules (the limiter's Durable Object base class comes from
// `cloudflare:workers`); the in-process apps never construct one, so a stub is enough.
const cloudflareStub = {
  name: "cloudflare-stub",
  setup(b) {
    b.onResolve({ filter: /^cloudflare:/ }, (a) => ({ path: a.path, namespace: "cloudflare-stub" }));
    b.onLoad({ filter: /.*/, namespace: "cloudflare-stub" }, () => ({
      contents: "export class DurableObject { constructor(ctx, env) { this.ctx = ctx; this.env = env; } } export class WorkerEntrypoint {} export class RpcTarget {} export const env = {};",
      loader: "js",
    }));
  },
};

/** A TypeScript module of the project bundled for Node, then imported. */
export async function importForNode(outDir, entry, name, tree = root) {
  const outfile = path.join(outDir, `${name}.node.mjs`);
  await build({
    entryPoints: [path.join(tree, entry)],
    outfile,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    plugins: [cloudflareStub],
    logLevel: "error",
    // No keepNames: its __name() wrappers would run per request and show up in the profile.
  });
  return import(`${outfile}?t=${Date.now()}`);
}

/** The vendored modules (worker/vendor/) import files of node_modules by relative path: give the tree this checkout's. */
function linkModules(dir) {
  symlinkSync(path.join(root, "node_modules"), path.join(dir, "node_modules"), "dir");
}

/**
 * The source tree of an older revision for before/after runs: its worker/, plugins/ and config
 * from git, with this checkout's bench/worker (so both sides are measured the same way).
 * Dependencies resolve from this checkout's node_modules (the tree lives under bench/scratch/).
 */
export function treeAt(rev, scratch) {
  if (rev.includes("..")) return treeWithout(rev, scratch);
  const sha = execFileSync("git", ["-C", root, "rev-parse", "--short", rev], { encoding: "utf8" }).trim();
  const dir = path.join(scratch, `tree-${sha}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tar = execFileSync("git", ["-C", root, "archive", sha, "worker", "plugins", "gateway.config.ts"]);
  execFileSync("tar", ["-x", "-C", dir], { input: tar });
  cpSync(path.join(root, "bench", "worker"), path.join(dir, "bench", "worker"), { recursive: true });
  // The benchmark worker's shared fixtures (the origin's body).
  cpSync(path.join(root, "bench", "lib"), path.join(dir, "bench", "lib"), { recursive: true });
  linkModules(dir);
  return { id: sha, label: sha, dir };
}

/**
 * `A..B`: this checkout's HEAD with the worker/ changes of A..B reverted (three-way, in a
 * throw-away index, so the checkout is untouched) — "the current code without these fixes",
 * for when plugins merged since A make A's own tree incomparable.
 */
function treeWithout(range, scratch) {
  const [a, b] = range.split("..").map((r) => execFileSync("git", ["-C", root, "rev-parse", "--short", r], { encoding: "utf8" }).trim());
  const sha = `without-${a}-${b}`;
  const dir = path.join(scratch, `tree-${sha}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const env = { ...process.env, GIT_INDEX_FILE: path.join(scratch, `index-${sha}`) };
  const git = (args, input) => execFileSync("git", ["-C", root, ...args], { env, input, encoding: "utf8" });
  git(["read-tree", "HEAD"]);
  // File by file: a file whose reversal conflicts with later merges keeps HEAD's version.
  const files = git(["diff", "--name-only", a, b, "--", "worker"]).split("\n").filter(Boolean);
  const kept = [];
  for (const f of files) {
    try {
      git(["apply", "--cached", "-R", "-3"], git(["diff", a, b, "--", f]));
    } catch {
      git(["read-tree", "HEAD"]); // drop the failed attempt, then redo the files done so far
      for (const done of files.slice(0, files.indexOf(f))) if (!kept.includes(done)) git(["apply", "--cached", "-R", "-3"], git(["diff", a, b, "--", done]));
      kept.push(f);
    }
  }
  git(["checkout-index", "-a", `--prefix=${dir}/`]);
  rmSync(env.GIT_INDEX_FILE, { force: true });
  // worker/app.ts (merged since) may keep calling dbFor: "before" built drizzle per request.
  const dbFile = path.join(dir, "worker", "db", "index.ts");
  if (!readFileSync(dbFile, "utf8").includes("dbFor")) appendFileSync(dbFile, "\n// bench before-tree: the drizzle instance as it was, built per request\nexport const dbFor = createDb;\n");
  cpSync(path.join(root, "bench", "worker"), path.join(dir, "bench", "worker"), { recursive: true });
  linkModules(dir);
  return { id: "before", label: `HEAD without ${a}..${b}${kept.length ? ` (kept: ${kept.join(", ")})` : ""}`, dir };
}
