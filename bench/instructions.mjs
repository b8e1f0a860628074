#!/usr/bin/env node
// `npm run bench:instructions`: instructions per request, counted by valgrind (callgrind) in the
// whole workerd process, for each scenario of the benchmark. A count, not a time: the same code
// gives the same figure within ~1% whatever else the machine does, where throughput and CPU time
// move ±10–20% between rounds on this host (bench/README.md, "Instruction counts").
//
//   npm run bench:instructions                          the default scenario list, 4 windows each (~25 min)
//   npm run bench:instructions -- --scenarios bare,default --requests 1000 --windows 4
//   npm run bench:instructions -- --connections 8       concurrent instead of sequential requests
//   npm run bench:instructions -- --warmup 1000         requests before the first window (a multiple of 100)
//   npm run bench:instructions -- --smoke               one window of 100 requests, no results file (CI)
//   npm run bench:instructions -- --render bench/results/instructions-DATE.json   re-renders its .md
//   npm run bench:instructions -- --keep-dumps          keep each window's callgrind dump in bench/scratch/callgrind/
//                                                       (<scenario>.<window>.callgrind): callgrind_annotate FILE lists
//                                                       the functions, C++ by name (JIT-compiled JavaScript shows as ???)
//   npm run bench:instructions -- --out DIR             where the JSON and the table go (bench/results)
//
// How: Miniflare starts workerd through a wrapper (MINIFLARE_WORKERD_PATH) that runs it under
// `valgrind --tool=callgrind`, with every benchmark scenario as its own worker, as bench/run.mjs
// does. Per scenario: every key of the load once (cold caches, JIT), a warm-up, then windows of
// N requests, each between `callgrind_control --zero` and `--dump`; instructions ÷ requests.
// Audit batches flush by count (100 events), as at saturation: under valgrind's ~50× slowdown
// the 1 s flush timer would otherwise flush them part-full (BENCH_AUDIT_FLUSH_MS).
//
// What a count includes: everything workerd executes in the window — the worker, Miniflare's
// D1/Durable Object/Queue services in the same process, V8's JIT and GC. What it leaves out:
// the origin, the load generator, the Upstash bridge and Redis (other processes), time spent
// waiting, and differences in cost per instruction (cache misses, memory bandwidth).
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { BLOCKS } from "./lib/blocks.mjs";
import { buildWorker } from "./lib/build.mjs";
import { nodeLoad } from "./lib/load.mjs";
import { seed } from "./lib/seed.mjs";
import { startOrigin, startUpstash, startWorkerd, stopAll, which } from "./lib/servers.mjs";
import { median } from "./lib/stats.mjs";

const { values: args } = parseArgs({
  options: {
    scenarios: { type: "string" },
    requests: { type: "string" },
    windows: { type: "string" },
    connections: { type: "string" },
    keys: { type: "string" },
    warmup: { type: "string" },
    out: { type: "string" },
    smoke: { type: "boolean", default: false },
    "keep-dumps": { type: "boolean", default: false },
    render: { type: "string" },
  },
});
const root = path.resolve(import.meta.dirname, "..");
const scratch = path.join(root, "bench", "scratch");
const cgDir = path.join(scratch, "callgrind");
const log = (m) => process.stderr.write(`[instructions] ${m}\n`);

// Each scenario is a worker of bench/worker/entry.ts; `bindings` as bench/run.mjs gives them.
const warm = { KEY_CACHE_TTL_SECONDS: "60", SECRET_CACHE_TTL_SECONDS: "300" };
const SCENARIOS = {
  bare: { label: "bare Hono pass-through" },
  floor: { base: "bare", label: "safe pass-through floor" },
  // What a request header costs to set and send (named only).
  "bare-copy": { base: "bare", label: "bare, request headers copied (new Headers)" },
  "bare-copy-4-headers": { base: "bare-copy", label: "bare, headers copied and 4 more set and sent" },
  core: { base: "floor", label: "gateway core, no plugins" },
  // The floor without one of its parts, and its other ways to bound the origin call (named only).
  "floor-no-timeout": { base: "floor", label: "floor without its timeout" },
  "floor-no-request-copy": { base: "floor", label: "floor without its request header copy" },
  "floor-no-response-copy": { base: "floor", label: "floor without its response copy" },
  "floor-timeout-controller": { base: "floor", label: "floor, timeout by an AbortController and setTimeout" },
  "floor-timeout-race": { base: "floor", label: "floor, timeout by a setTimeout raced against the fetch" },
  "floor-response-two-copies": { base: "floor", label: "floor, response headers copied twice (before session 13)" },
  "floor-response-unsanitized": { base: "floor", label: "floor, response copied but not stripped of hop-by-hop headers" },
  "chain-audit": { base: "core", label: "core + audit", bindings: warm },
  "chain-key-auth": { base: "chain-audit", label: "core + audit, key-auth", bindings: warm },
  "chain-authorize": { base: "chain-key-auth", label: "core + audit, key-auth, authorize", bindings: warm },
  default: { base: "chain-authorize", label: "default pipeline (+ headers with the injected secret)", bindings: warm },
  "default-queue-tiny": { base: "default", scenario: "default", label: "default, audit sends with tiny bodies (same calls and messages)", bindings: { ...warm, BENCH_AUDIT_QUEUE: "tiny" } },
  "default-queue-discarded": { base: "default", scenario: "default", label: "default, audit batches encoded and dropped (no Queue send)", bindings: { ...warm, BENCH_AUDIT_QUEUE: "discard" } },
  "ratelimit-do": { base: "default", label: "default + rate limit, Durable Object backend", bindings: warm, limiter: "durable-object" },
  "ratelimit-upstash": { base: "default", label: "default + rate limit, Upstash backend (bridge and Redis not counted)", bindings: warm, limiter: "upstash" },
  // Issue #4's minimal limited pipeline (named only): key-auth alone, then with the rate limit.
  keyauth: { base: "core", label: "key-auth only (warm)", bindings: warm },
  "limit-do": { base: "keyauth", label: "key-auth + rate limit, Durable Object backend", bindings: warm, limiter: "durable-object" },
  "limit-upstash": { base: "keyauth", label: "key-auth + rate limit, Upstash backend (bridge and Redis not counted)", bindings: warm, limiter: "upstash" },
  jwt: { base: "default", label: "JWT auth instead of key-auth", bindings: { SECRET_CACHE_TTL_SECONDS: "300" }, credentials: "jwt" },
  "jwt-verify-each": { base: "jwt", label: "JWT auth, every token verified (verifiedCacheSeconds: 0)", bindings: { SECRET_CACHE_TTL_SECONDS: "300" }, credentials: "jwt" },
  // The building blocks issue #6 quotes, each on bare (named only).
  ...Object.fromEntries(BLOCKS.map(({ name, ...b }) => [name, { base: "bare", ...b }])),
};
const DEFAULT_LIST = ["bare", "floor", "core", "chain-audit", "chain-key-auth", "chain-authorize", "default", "default-queue-tiny", "default-queue-discarded", "ratelimit-do", "ratelimit-upstash"];
const names = args.scenarios?.split(",") ?? DEFAULT_LIST;
for (const n of names) if (!SCENARIOS[n]) throw new Error(`unknown scenario "${n}" (known: ${Object.keys(SCENARIOS).join(", ")})`);
const useRedis = Boolean(which("redis-server"));
const list = names.filter((n) => SCENARIOS[n].limiter !== "upstash" || useRedis || (log(`${n}: redis-server missing, skipped`), false));

const cfg = {
  // A multiple of the audit batch (100), so every window holds whole batches and their sends.
  // 1,000 requests a window: a major GC (a few million instructions) moves a 500-request window by ~5%.
  requests: Number(args.requests ?? (args.smoke ? 100 : 1000)),
  windows: Number(args.windows ?? (args.smoke ? 1 : 4)),
  connections: Number(args.connections ?? 1),
  // Keys in the load: few enough that all of them are cached within the key TTL (60 s) at valgrind's pace.
  keys: Number(args.keys ?? 100),
  // V8 is still tiering up for the first ~1,000 requests: counts fall window after window until then.
  warmup: Number(args.warmup ?? (args.smoke ? 100 : 1000)),
};
if (cfg.requests % 100) throw new Error("--requests must be a multiple of 100 (the audit batch)");

// Apart from bench/run.mjs (87xx below 8760) and bench/micro-workerd.mjs (8761).
const PORTS = { origin: 8781, redis: 8782, upstashBridge: 8783, workerFirst: 8790 };
const ADMIN_TOKEN = "bench-admin-token-not-a-secret-0001";
const ORIGIN_TOKEN = "bench-origin-secret-0001";
const UPSTASH_TOKEN = "bench-upstash-token-not-a-secret";
const JWT_SECRET = "bench-jwt-hs256-secret-of-at-least-32-bytes";

/** A workerd that runs under callgrind: Miniflare starts whatever MINIFLARE_WORKERD_PATH names. */
async function valgrindWrapper() {
  // The binary's path (a CommonJS module: its default export is under `default` again).
  const mod = await import("workerd");
  const workerd = typeof mod.default === "string" ? mod.default : mod.default.default;
  rmSync(cgDir, { recursive: true, force: true });
  mkdirSync(cgDir, { recursive: true });
  const wrapper = path.join(scratch, "workerd-callgrind.sh");
  // --smc-check: V8 writes and rewrites its machine code in anonymous memory. Costs are collected
  // from the start and zeroed per window; only the totals are read (no per-instruction dumps).
  writeFileSync(
    wrapper,
    `#!/bin/sh\nexec valgrind --tool=callgrind --smc-check=all-non-file --dump-instr=no --compress-strings=no --log-file=${cgDir}/valgrind.%p.log --callgrind-out-file=${cgDir}/callgrind.out.%p ${workerd} "$@"\n`,
  );
  chmodSync(wrapper, 0o755);
  return wrapper;
}

/** Total instructions (Ir) of the newest dump in cgDir after `callgrind_control --dump`; the dump is kept as `keepAs` or deleted. */
function dumpInstructions(pid, keepAs) {
  const before = new Set(readdirSync(cgDir));
  const r = spawnSync("callgrind_control", ["--dump", String(pid)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`callgrind_control --dump failed: ${r.stderr || r.stdout}`);
  const fresh = readdirSync(cgDir).filter((f) => f.startsWith(`callgrind.out.${pid}.`) && !before.has(f));
  if (fresh.length !== 1) throw new Error(`expected one new callgrind dump, found ${fresh.length}`);
  const text = readFileSync(path.join(cgDir, fresh[0]), "utf8");
  if (keepAs) renameSync(path.join(cgDir, fresh[0]), path.join(cgDir, keepAs));
  else rmSync(path.join(cgDir, fresh[0]));
  const m = /^summary:\s+(\d+)/m.exec(text) ?? /^totals:\s+(\d+)/m.exec(text);
  if (!m) throw new Error("no summary line in the callgrind dump");
  return Number(m[1]);
}

function zero(pid) {
  const r = spawnSync("callgrind_control", ["--zero", String(pid)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`callgrind_control --zero failed: ${r.stderr || r.stdout}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  for (const bin of ["valgrind", "callgrind_control"]) if (!which(bin)) throw new Error(`${bin} is missing: apt-get install -y valgrind`);
  mkdirSync(scratch, { recursive: true });
  process.env.MINIFLARE_WORKERD_PATH = await valgrindWrapper();
  const origin = await startOrigin({ port: PORTS.origin, dir: scratch, cpus: "0", useNginx: Boolean(which("nginx")) });
  const upstash = list.some((n) => SCENARIOS[n].limiter === "upstash") ? await startUpstash({ redisPort: PORTS.redis, bridgePort: PORTS.upstashBridge, dir: scratch, cpus: "0", token: UPSTASH_TOKEN }) : undefined;
  const scriptPath = await buildWorker(scratch);
  const workers = list.map((name, i) => {
    const s = SCENARIOS[name];
    return {
      name,
      scenario: s.scenario ?? name,
      port: PORTS.workerFirst + i,
      bindings: {
        ...(s.bindings ?? {}),
        BENCH_AUDIT_FLUSH_MS: "10000",
        ...(s.limiter === "upstash" ? { UPSTASH_REDIS_REST_URL: upstash.url, UPSTASH_REDIS_REST_TOKEN: UPSTASH_TOKEN } : {}),
      },
      durableObjects: s.durableObjects ?? (s.limiter === "durable-object" ? { LIMITER: { className: "LimiterDurableObject", useSQLite: true, unsafePreventEviction: true } } : undefined),
    };
  });
  const t0 = Date.now();
  log(`starting workerd under callgrind with ${workers.length} workers (a minute or two)…`);
  const workerd = await startWorkerd({
    scriptPath,
    workers,
    cpus: "1",
    readyTimeoutMs: 600_000,
    compatibilityDate: /compatibility_date\s*=\s*"([^"]+)"/.exec(readFileSync(path.join(root, "wrangler.toml"), "utf8"))[1],
    bindings: { ORIGIN_URL: `http://127.0.0.1:${PORTS.origin}`, ORIGIN_TOKEN, ADMIN_TOKEN, SECRETS_KEY: Buffer.alloc(32, 7).toString("base64"), JWT_SECRET },
  });
  // valgrind's pid (its log file names it): the process callgrind_control talks to.
  const logs = readdirSync(cgDir).filter((f) => /^valgrind\.\d+\.log$/.test(f));
  if (logs.length !== 1) throw new Error(`expected one valgrind log in ${cgDir}, found ${logs.length}`);
  const pid = Number(/\d+/.exec(logs[0])[0]);
  log(`workerd (pid ${pid}) up in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  const db = await workerd.miniflare.getD1Database("DB", workers[0].name);
  const seeded = await seed(db, { users: 1000, loadKeys: cfg.keys, permission: "bench:read", scratch });
  let jwtFile;
  if (list.some((n) => SCENARIOS[n].credentials === "jwt")) {
    const { SignJWT } = await import("jose");
    const secret = new TextEncoder().encode(JWT_SECRET);
    const exp = Math.floor(Date.now() / 1000) + 7200;
    const tokens = await Promise.all(seeded.loadUserIds.map((sub) => new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setExpirationTime(exp).sign(secret)));
    jwtFile = path.join(scratch, "instructions-jwts.txt");
    writeFileSync(jwtFile, `${tokens.join("\n")}\n`);
  }
  // The hand-made apps (bare*, floor*, block*) pass any request to the origin: the secret goes through a gateway.
  const gatewayWorker = workers.find((w) => !/^(bare|floor|block)(-|$)/.test(w.scenario));
  if (gatewayWorker) {
    const res = await fetch(`http://127.0.0.1:${gatewayWorker.port}/admin/v1/secrets/ORIGIN_TOKEN`, {
      method: "PUT",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ value: ORIGIN_TOKEN }),
    });
    if (!res.ok) throw new Error(`storing the origin secret failed: ${res.status} ${await res.text()}`);
  }

  const results = [];
  for (const w of workers) {
    const s = SCENARIOS[w.name];
    const url = `http://127.0.0.1:${w.port}/api/orders/42`;
    const keysFile = s.credentials === "jwt" ? jwtFile : seeded.keysFile;
    const load = async (n) => {
      const r = await nodeLoad({ mode: "closed", url, connections: cfg.connections, durationMs: 3_600_000, maxRequests: n, keysFile }, "0");
      if (r.errors) throw new Error(`${w.name}: ${r.errors} of ${r.requests} requests failed (${r.firstError})`);
      return r;
    };
    const stats = async () => (await fetch(`http://127.0.0.1:${w.port}/__bench/stats`)).json();
    // The load's keys stay cached for KEY_CACHE_TTL_SECONDS (60, the most the gateway allows),
    // counted from when each was looked up; at valgrind's pace a scenario outlives that, and the
    // keys would be re-read from D1 together inside some window. So the key pass is timed: before
    // a window that would end past the TTL, wait until every cached key has expired and present
    // them all again (D1 reads outside the windows), then a short re-warm.
    const cachesKeys = Boolean(s.bindings?.KEY_CACHE_TTL_SECONDS || s.credentials === "jwt");
    const pass = { start: 0, end: 0 };
    const presentKeys = async () => {
      pass.start = Date.now();
      await load(cfg.keys);
      pass.end = Date.now();
    };
    await presentKeys();
    await load(cfg.warmup);
    const windows = [];
    let rejected = 0;
    while (windows.length < cfg.windows) {
      const expected = windows.length ? windows[windows.length - 1].seconds : 30;
      if (cachesKeys && (Date.now() - pass.start) / 1000 + expected > 57) {
        await sleep(Math.max(0, pass.end + 61_000 - Date.now()));
        await presentKeys();
        await load(200);
      }
      const st0 = await stats();
      zero(pid);
      const tw = Date.now();
      await load(cfg.requests);
      // The last batch's send runs in waitUntil after the last response: let it finish inside the window.
      await sleep(2000);
      const instructions = dumpInstructions(pid, args["keep-dumps"] ? `${w.name}.${windows.length + rejected + 1}.callgrind` : undefined);
      const st1 = await stats();
      const window = {
        perRequest: instructions / cfg.requests,
        seconds: (Date.now() - tw) / 1000,
        d1Statements: st1.d1Statements - st0.d1Statements,
        auditSends: st1.auditSends - st0.auditSends,
        limiterCalls: st1.limiterCalls - st0.limiterCalls,
      };
      // A window with the keys' D1 reads in it (~100 statements) measures those, not the warm
      // path: repeated (at most 3 times), as run.mjs repeats a round disturbed by foreign load. A
      // statement or two (an origin secret's cache expiring) costs ~0.1% of a window.
      if (window.d1Statements > 5 && rejected < 3) {
        rejected++;
        log(`  ${w.name}: window with ${window.d1Statements} D1 statements (keys re-read after their TTL), repeating`);
        continue;
      }
      windows.push(window);
    }
    const per = windows.map((x) => x.perRequest);
    const row = { name: w.name, label: s.label, median: median(per), min: Math.min(...per), max: Math.max(...per), windows, rejected };
    results.push(row);
    log(`${w.name.padEnd(24)} ${Math.round(row.median).toLocaleString("en-US").padStart(10)} instructions/request (${per.map((x) => Math.round(x / 1000)).join(", ")} k) | audit sends ${windows.map((x) => x.auditSends).join("/")} | D1 ${windows.map((x) => x.d1Statements).join("/")}`);
  }
  return { results, origin };
}

function table(results) {
  const bare = results.find((r) => r.name === "bare");
  const k = (x) => Math.round(x / 1000).toLocaleString("en-US");
  const lines = [
    "| scenario | instructions/request (median, min–max over windows) | over bare | over its base (the scenario it adds to) |",
    "|---|---:|---:|---:|",
  ];
  for (const r of results) {
    const base = results.find((x) => x.name === SCENARIOS[r.name].base);
    const over = (x) => `${r.median >= x.median ? "+" : "−"}${k(Math.abs(r.median - x.median))} k`;
    lines.push(`| ${r.name}: ${r.label} | ${k(r.median)} k (${k(r.min)}–${k(r.max)}) | ${bare && r !== bare ? over(bare) : "–"} | ${base ? `${over(base)} over ${base.name}` : "–"} |`);
  }
  return lines.join("\n");
}

/** The results file's text, from the run's JSON record (also what --render FILE.json re-renders). */
function markdown(run) {
  const c = run.config;
  return [
    `# Instructions per request, ${run.date.slice(0, 10)}`,
    "",
    `Run at ${run.date}, commit \`${run.commit}\`, by \`npm run bench:instructions\` (method: bench/README.md, "Instruction counts").`,
    `${run.machine}; ${run.valgrind} (callgrind), workerd ${run.workerd}, node ${run.node}.`,
    `${c.windows} windows of ${c.requests} requests per scenario, ${c.connections} connection(s), ${c.keys} keys of 1,000 proxy users in the load, after every key once and ${c.warmup} warm-up requests.`,
    "",
    table(run.results),
    "",
    "Counted: every instruction the workerd process executed in the window (the worker, Miniflare's D1, Durable Object and Queue services, V8's compiler and GC), divided by the window's requests. Not counted: the origin, the load generator, the Upstash bridge and Redis, and the kernel's work (sockets, timers) for any of them.",
    "",
  ].join("\n");
}

if (args.render) {
  const file = path.resolve(args.render);
  writeFileSync(file.replace(/\.json$/, ".md"), markdown(JSON.parse(readFileSync(file, "utf8"))));
  process.exit(0);
}

// Killed by a signal, the finally below never runs: stop the origin, nginx, the bridge and Redis
// (and workerd under valgrind) anyway, or they keep ports 878x-879x for the next run.
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => stopAll().finally(() => process.exit(130)));

let out;
try {
  out = await main();
} finally {
  await stopAll();
}
const date = new Date().toISOString();
const run = {
  date,
  commit: spawnSync("git", ["-C", root, "rev-parse", "--short", "HEAD"], { encoding: "utf8" }).stdout.trim(),
  machine: `${os.cpus()[0]?.model ?? "unknown"}, ${os.cpus().length} cores, Linux ${os.release()}`,
  valgrind: spawnSync("valgrind", ["--version"], { encoding: "utf8" }).stdout.trim(),
  workerd: JSON.parse(readFileSync(path.join(root, "node_modules", "workerd", "package.json"), "utf8")).version,
  node: process.version,
  config: cfg,
  results: out.results,
};
if (args.smoke) {
  process.stdout.write(`${markdown(run)}\n`);
} else {
  const dir = args.out ? path.resolve(args.out) : path.join(root, "bench", "results");
  mkdirSync(dir, { recursive: true });
  // instructions-<date>.md, then -2, -3… for further runs that day (recorded results are kept).
  let base = path.join(dir, `instructions-${date.slice(0, 10)}`);
  for (let n = 2; existsSync(`${base}.json`); n++) base = path.join(dir, `instructions-${date.slice(0, 10)}-${n}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(run, null, 2)}\n`);
  writeFileSync(`${base}.md`, markdown(run));
  log(`wrote ${path.relative(process.cwd(), base)}.md`);
}
