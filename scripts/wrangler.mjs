#!/usr/bin/env node
// Runs the project's pinned wrangler with the offline settings every call needs:
// no telemetry, no prompts, no Cloudflare API lookups, no banner.
// Usage: node scripts/wrangler.mjs <wrangler args...>  (exit code is wrangler's)
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { constants } from "node:os";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const bin = path.join(root, "node_modules", "wrangler", "bin", "wrangler.js");

/** The environment that keeps wrangler local-only. Exported for the other scripts. */
export const OFFLINE_WRANGLER_ENV = {
  CI: "true",
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  WRANGLER_HIDE_BANNER: "true",
};

export const WRANGLER_BIN = bin;

function main() {
  if (!existsSync(bin)) {
    console.error(`wrangler is not installed (${path.relative(process.cwd(), bin)} missing): run \`npm ci\` first.`);
    process.exit(1);
  }
  const child = spawn(process.execPath, [bin, ...process.argv.slice(2)], {
    stdio: "inherit",
    env: { ...process.env, ...OFFLINE_WRANGLER_ENV },
  });
  // Pass Ctrl-C / termination on to wrangler and let it exit first.
  for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
  child.on("error", (err) => {
    console.error(`could not start wrangler: ${err.message}`);
    process.exit(1);
  });
  child.on("exit", (code, signal) => {
    // Killed by a signal: exit the way a shell reports it (128 + signal number).
    process.exit(signal ? 128 + (constants.signals[signal] ?? 0) : (code ?? 1));
  });
}

// Run only when executed directly, not when imported for the constants above.
if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) main();
