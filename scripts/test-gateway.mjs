// A real gateway in workerd for node-side tests and scripts (CLI e2e, browser e2e, `npm run cli:types`):
// the test fixture worker (every upstream → one origin URL) on 127.0.0.1, with its own fresh local D1
// (migrations applied by wrangler, as in production), no inspector, no watcher, nothing remote.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { OFFLINE_WRANGLER_ENV, WRANGLER_BIN } from "./wrangler.mjs";

const root = path.resolve(import.meta.dirname, "..");
// The wrangler API reads these from process.env, not from an option.
Object.assign(process.env, OFFLINE_WRANGLER_ENV);

function run(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRANGLER_BIN, ...args], { cwd: root, env: { ...process.env, ...OFFLINE_WRANGLER_ENV }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`wrangler ${args.join(" ")} exited ${code}:\n${out}`))));
  });
}

/**
 * Starts the fixture gateway. `originUrl` is where every upstream points (the recording origin).
 *
 * @example
 * const gw = await startTestGateway({ originUrl: "http://127.0.0.1:8601", adminToken: "t".repeat(32) });
 * await fetch(`${gw.url}/healthz`); await gw.stop();
 * @param {{ originUrl: string, adminToken: string, port?: number, entrypoint?: string }} opts
 * @returns {Promise<{ url: string, persist: string, stop: () => Promise<void> }>}
 */
export async function startTestGateway({ originUrl, adminToken, port = 0, entrypoint = "test/fixtures/worker.ts" }) {
  const persist = await mkdtemp(path.join(tmpdir(), "portcullis-gw-"));
  await run(["d1", "migrations", "apply", "DB", "--local", "--persist-to", persist]);
  const { unstable_startWorker } = await import("wrangler");
  const worker = await unstable_startWorker({
    config: path.join(root, "wrangler.toml"),
    entrypoint: path.join(root, entrypoint),
    envFiles: [],
    bindings: {
      ADMIN_TOKEN: { type: "plain_text", value: adminToken },
      TEST_ORIGIN_URL: { type: "plain_text", value: originUrl },
      TEST_ORIGIN_PREFIXED_URL: { type: "plain_text", value: `${originUrl}/base/v1` },
      ECHO_ORIGIN_TOKEN: { type: "plain_text", value: "origin-secret-value-7f3a9c" },
      // The same test-only keys as the workerd project (vitest.config.ts): jwt-auth and the secret store.
      JWT_HS_SECRET: { type: "plain_text", value: "hs256-test-secret-0123456789abcdef0123" },
      SECRETS_KEY: { type: "plain_text", value: "dGVzdC1zZWNyZXRzLWtleS0zMi1ieXRlcy1sb25nISE=" },
      // The fixture's Upstash-backed limits point here; nothing listens, so they report LIMITER_UNAVAILABLE.
      UPSTASH_TEST_URL: { type: "plain_text", value: "http://127.0.0.1:9" },
      UPSTASH_TEST_TOKEN: { type: "plain_text", value: "e2e-no-upstash" },
    },
    dev: { server: { hostname: "127.0.0.1", port }, inspector: false, persist, watch: false, liveReload: false, remote: false, logLevel: "warn" },
  });
  const url = (await worker.url).toString().replace(/\/$/, "");
  return {
    url,
    persist,
    stop: async () => {
      await worker.dispose();
      await rm(persist, { recursive: true, force: true });
    },
  };
}

/**
 * Runs SQL on a test gateway's local D1 the way an operator would (`wrangler d1 execute DB
 * --local`), e.g. the README's way out of an admin token throttle. Returns wrangler's output.
 *
 * @param {string} persist the gateway's `persist` directory
 * @param {string} sql
 */
export const d1Execute = (persist, sql) => run(["d1", "execute", "DB", "--local", "--persist-to", persist, "--command", sql]);
