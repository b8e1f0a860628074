// Bundles with esbuild (the version wrangler uses): the benchmark worker for workerd, and the
// same code for Node (key generation for seeding, the micro-benchmark's in-process apps).
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, rmSync } from "node:fs";
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
    logLevel: "error",
  });
  return outfile;
}

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
    logLevel: "error",
    // No keepNames: its __name() wrappers would run per request and show up in the profile.
  });
  return import(`${outfile}?t=${Date.now()}`);
}

/**
 * The source tree of an older revision for before/after runs: its worker/, plugins/ and config
 * from git, with this checkout's bench/worker (so both sides are measured the same way).
 * Dependencies resolve from this checkout's node_modules (the tree lives under bench/scratch/).
 */
export function treeAt(rev, scratch) {
  const sha = execFileSync("git", ["-C", root, "rev-parse", "--short", rev], { encoding: "utf8" }).trim();
  const dir = path.join(scratch, `tree-${sha}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tar = execFileSync("git", ["-C", root, "archive", sha, "worker", "plugins", "gateway.config.ts"]);
  execFileSync("tar", ["-x", "-C", dir], { input: tar });
  cpSync(path.join(root, "bench", "worker"), path.join(dir, "bench", "worker"), { recursive: true });
  return { sha, dir };
}
