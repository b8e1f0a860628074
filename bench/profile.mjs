// CPU profile of one benchmark scenario inside workerd, taken through workerd's inspector
// (Chrome DevTools protocol), while a closed-loop load runs. This is where the hot path's cost
// is found: the Node micro-benchmark runs undici's JS Headers/Request/Response, workerd runs
// C++ ones, so only a workerd profile shows what the targets are judged on.
//
//   npm run bench:profile                       the default pipeline, 5 s of load
//   npm run bench:profile -- --scenario bare    any scenario of bench/worker/scenarios.ts, bare or floor
//   npm run bench:profile -- --scenario ratelimit-upstash   starts its Redis and bridge too
//   npm run bench:profile -- --seconds 10 --top 40
//   npm run bench:profile -- --discard-queue    audit batches encoded and dropped (no Queue send)
//
// Writes bench/scratch/workerd-<scenario>.cpuprofile (open it in Chrome DevTools → Performance)
// and prints the functions with the most self time, plus requests/s and workerd CPU µs/request
// (the profiler itself costs CPU: compare those only between profiled runs).
import { writeFileSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import { buildWorker } from "./lib/build.mjs";
import { hasWrk, nodeLoad, wrkClosed } from "./lib/load.mjs";
import { startCpuWindow } from "./lib/proc.mjs";
import { seed } from "./lib/seed.mjs";
import { startOrigin, startUpstash, startWorkerd, stopAll, which } from "./lib/servers.mjs";

// Node 20 has WebSocket only behind a flag: re-run ourselves with it.
if (typeof globalThis.WebSocket !== "function") {
  const r = spawnSync(process.execPath, ["--experimental-websocket", ...process.argv.slice(1)], { stdio: "inherit" });
  process.exit(r.status ?? 1);
}

const { values: args } = parseArgs({ options: { scenario: { type: "string" }, seconds: { type: "string" }, top: { type: "string" }, interval: { type: "string" }, "discard-queue": { type: "boolean" } } });
const scenario = args.scenario ?? "default";
const seconds = Number(args.seconds ?? 5);
const root = path.resolve(import.meta.dirname, "..");
const scratch = path.join(root, "bench", "scratch");
mkdirSync(scratch, { recursive: true });
const PORTS = { origin: 8751, worker: 8752, inspector: 8753, redis: 8754, upstashBridge: 8755 };
const UPSTASH_TOKEN = "bench-upstash-token-not-a-secret";
const ADMIN_TOKEN = "bench-admin-token-not-a-secret-0001";
const log = (m) => process.stderr.write(`[profile] ${m}\n`);

/** A minimal CDP client: numbered requests over one WebSocket, answers matched by id. */
async function cdp(url) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", reject, { once: true });
  });
  let next = 0;
  const pending = new Map();
  ws.addEventListener("message", (e) => {
    const msg = JSON.parse(e.data);
    if (msg.id !== undefined && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  });
  return {
    send: (method, params = {}) =>
      new Promise((resolve, reject) => {
        const id = ++next;
        pending.set(id, (m) => (m.error ? reject(new Error(`${method}: ${m.error.message}`)) : resolve(m.result)));
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
}

/** Self time per function (name, file, line), summed over the profile's nodes. */
function topSelf(profile, n) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map();
  const dt = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]);
    const f = node.callFrame;
    const key = `${f.functionName || "(anonymous)"} ${path.basename(f.url || "")}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0));
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, us]) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
}

async function main() {
  const origin = await startOrigin({ port: PORTS.origin, dir: scratch, cpus: "0", useNginx: Boolean(which("nginx")) });
  const scriptPath = await buildWorker(scratch);
  // The rate-limit scenarios need their backend, bound as bench/run.mjs binds it.
  const limiter = scenario.startsWith("ratelimit-upstash") ? "upstash" : scenario.startsWith("ratelimit-do") ? "durable-object" : undefined;
  const upstash = limiter === "upstash" ? await startUpstash({ redisPort: PORTS.redis, bridgePort: PORTS.upstashBridge, dir: scratch, cpus: "1", token: UPSTASH_TOKEN }) : undefined;
  const workerd = await startWorkerd({
    scriptPath,
    workers: [
      {
        name: scenario,
        scenario,
        port: PORTS.worker,
        bindings: { KEY_CACHE_TTL_SECONDS: "60", SECRET_CACHE_TTL_SECONDS: "300", ...(args["discard-queue"] ? { BENCH_AUDIT_QUEUE: "discard" } : {}), ...(upstash ? { UPSTASH_REDIS_REST_URL: upstash.url, UPSTASH_REDIS_REST_TOKEN: UPSTASH_TOKEN } : {}) },
        durableObjects: limiter === "durable-object" ? { LIMITER: { className: "LimiterDurableObject", useSQLite: true, unsafePreventEviction: true } } : undefined,
      },
    ],
    cpus: "1",
    inspectorPort: PORTS.inspector,
    compatibilityDate: /compatibility_date\s*=\s*"([^"]+)"/.exec(readFileSync(path.join(root, "wrangler.toml"), "utf8"))[1],
    bindings: { ORIGIN_URL: `http://127.0.0.1:${PORTS.origin}`, ORIGIN_TOKEN: "bench-origin-secret-0001", ADMIN_TOKEN, SECRETS_KEY: Buffer.alloc(32, 7).toString("base64"), JWT_SECRET: "bench-jwt-hs256-secret-of-at-least-32-bytes" },
  });
  const db = await workerd.miniflare.getD1Database("DB", scenario);
  const seeded = await seed(db, { users: 2000, loadKeys: 500, permission: "bench:read", scratch });
  if (scenario !== "bare" && !scenario.startsWith("floor")) {
    const res = await fetch(`http://127.0.0.1:${PORTS.worker}/admin/v1/secrets/ORIGIN_TOKEN`, {
      method: "PUT",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ value: "bench-origin-secret-0001" }),
    });
    if (!res.ok) throw new Error(`storing the origin secret failed: ${res.status}`);
  }
  const url = `http://127.0.0.1:${PORTS.worker}/api/orders/42`;
  // Warm: every key once, then a few seconds of load so the JIT has settled.
  await nodeLoad({ mode: "closed", url, connections: 8, durationMs: 60_000, maxRequests: seeded.keys.length, keysFile: seeded.keysFile }, "0");
  const load = (ms) => (hasWrk ? wrkClosed({ url, connections: 32, durationMs: ms, keysFile: seeded.keysFile, cpus: "0" }) : nodeLoad({ mode: "closed", url, connections: 32, durationMs: ms, keysFile: seeded.keysFile }, "0"));
  await load(3000);

  const targets = await (await fetch(`http://127.0.0.1:${PORTS.inspector}/json`)).json();
  const target = targets.find((t) => t.title?.includes(scenario) || t.id?.includes(scenario)) ?? targets[0];
  const session = await cdp(target.webSocketDebuggerUrl.replace("ws://localhost", "ws://127.0.0.1"));
  await session.send("Profiler.enable");
  await session.send("Profiler.setSamplingInterval", { interval: Number(args.interval ?? 100) });
  await session.send("Profiler.start");
  const window = startCpuWindow(workerd.pids(), origin.pids());
  const r = await load(seconds * 1000);
  const cpu = window.end();
  const { profile } = await session.send("Profiler.stop");
  session.close();
  const file = path.join(scratch, `workerd-${scenario}.cpuprofile`);
  writeFileSync(file, JSON.stringify(profile));
  console.log(`${scenario}: ${Math.round(r.rps)} req/s (profiled), workerd ${(cpu.serverUs / r.requests).toFixed(1)} µs CPU/req, errors ${r.errors}`);
  console.log(`profile → ${path.relative(root, file)}\ntop self time:`);
  for (const line of topSelf(profile, Number(args.top ?? 30))) console.log(line);
}

try {
  await main();
} finally {
  await stopAll();
}
