#!/usr/bin/env node
// `npm run bench`: measures the gateway against the bare runtime and nginx, side by side.
//
//   npm run bench                  full run: ≥5 interleaved rounds, writes bench/results/<date>.md + .svg
//   npm run bench -- --smoke       a few seconds: tiny population, one short round, no results file;
//                                  fails on any error so the harness cannot rot (CI runs this)
//   options: --retries N (default 1)  --retry-budget-minutes M (stop repeating disturbed rounds after M)
//            --rounds N  --duration MS (per load mode)  --scenarios a,b,c  --no-micro  --no-bundle  --out DIR
//            --seed N (each round's random scenario order; recorded)  --settle MS (pause before each scenario, 1500)
//            --before REV   also run the default and cold scenarios (and the micro-benchmark) built
//                           from an older revision, side by side in the same workerd: a before/after
//                           record. REV may be A..B: this HEAD with the worker/ changes A..B reverted.
//            --twin-after   list each twin after its current scenario instead of before it
//            --connections N (closed loop, 32)  --fixed-connections N (fixed rate, 128)
//
// What runs (see bench/README.md): a tiny origin (nginx `return 200`, or Node without nginx), nginx
// proxy_pass with keep-alive, and one workerd (Miniflare's API, direct sockets, D1 in memory)
// running a bare Hono pass-through and the gateway in each scenario's configuration. Servers are
// pinned to one core, load generators to the other.
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { BLOCKS } from "./lib/blocks.mjs";
import { buildWorker, treeAt } from "./lib/build.mjs";
import { measureBundle } from "./lib/bundle.mjs";
import { hasWrk, nodeLoad, wrkClosed } from "./lib/load.mjs";
import { ncpu, startCpuWindow } from "./lib/proc.mjs";
import { writeReport } from "./lib/report.mjs";
import { seed } from "./lib/seed.mjs";
import { startNginxProxy, startOrigin, startUpstash, startWorkerd, stopAll, which } from "./lib/servers.mjs";
import { median } from "./lib/stats.mjs";

const root = path.resolve(import.meta.dirname, "..");
const { values: args } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    rounds: { type: "string" },
    duration: { type: "string" },
    scenarios: { type: "string" },
    "no-micro": { type: "boolean", default: false },
    "no-bundle": { type: "boolean", default: false },
    "twin-after": { type: "boolean", default: false },
    before: { type: "string" },
    retries: { type: "string" },
    settle: { type: "string" },
    seed: { type: "string" },
    "retry-budget-minutes": { type: "string" },
    out: { type: "string" },
    connections: { type: "string" },
    "fixed-connections": { type: "string" },
    "allow-missing-tools": { type: "boolean", default: false },
  },
});
const smoke = args.smoke;

// ── configuration ──────────────────────────────────────────────────────────────
const PORTS = { origin: 8701, nginx: 8702, redis: 8703, upstashBridge: 8704, workerFirst: 8710 };
const CPUS = ncpu >= 2 ? { server: "1", load: "0" } : { server: "0", load: "0" };
const cfg = {
  rounds: Number(args.rounds ?? (smoke ? 1 : 5)),
  satMs: Number(args.duration ?? (smoke ? 400 : 4000)),
  // A pause before each scenario: background work the previous one left in the shared workerd
  // (audit batches flushing up to 1 s after their first event, a GC) ends before the next is measured.
  settleMs: smoke ? 0 : Number(args.settle ?? 1500),
  // Each round's scenario order is shuffled with this seed (recorded): with a fixed rotation every
  // scenario always followed the same one and inherited its leftovers (2026-11-30-4.md).
  seed: Number(args.seed ?? Date.now() % 2 ** 31),
  fixedMs: Number(args.duration ?? (smoke ? 400 : 4000)),
  // Sent at the fixed rate before the recorded part, not recorded: a fresh generator's own start
  // (JIT, its keep-alive pool opening sockets) stalled requests by up to ~40 ms in its first second.
  fixedWarmupMs: smoke ? 100 : 1000,
  seqMs: smoke ? 200 : Math.min(2000, Number(args.duration ?? 2000)),
  warmMs: smoke ? 300 : 2000,
  connections: Number(args.connections ?? 32),
  fixedConnections: Number(args["fixed-connections"] ?? 128),
  users: smoke ? 200 : 10_000,
  loadKeys: smoke ? 50 : 1_000,
  maxForeign: 0.1,
  retries: smoke ? 0 : Number(args.retries ?? 1),
  // Warm scenarios keep resolved keys for the longest TTL the gateway allows, so "warm" means warm.
  warmKeyTtlSeconds: "60",
};
const scratch = path.join(root, "bench", "scratch");
mkdirSync(scratch, { recursive: true });
const useNginx = Boolean(which("nginx"));
// The Upstash rate-limit scenarios run the bridge over a Redis the harness starts.
const useRedis = Boolean(which("redis-server"));
const useWrk = hasWrk && !smoke;
// A full run without them is a different benchmark (no native-proxy reference, a Node load
// generator that saturates before fast servers): refuse unless asked, rather than record it.
if (!smoke && (!useNginx || !hasWrk) && !args["allow-missing-tools"]) {
  process.stderr.write(`[bench] a full run needs nginx and wrk (missing: ${[!useNginx && "nginx", !hasWrk && "wrk"].filter(Boolean).join(", ")}): apt-get install -y nginx wrk, or pass --allow-missing-tools\n`);
  process.exit(2);
}
const ADMIN_TOKEN = "bench-admin-token-not-a-secret-0001";
const ORIGIN_TOKEN = "bench-origin-secret-0001";
const SECRETS_KEY = Buffer.alloc(32, 7).toString("base64");
const JWT_SECRET = "bench-jwt-hs256-secret-of-at-least-32-bytes";
const UPSTASH_TOKEN = "bench-upstash-token-not-a-secret";

/**
 * Scenarios in report order. `worker` ones run in workerd with that BENCH_SCENARIO (see
 * bench/worker/scenarios.ts); `keys` = the load presents the population's keys.
 */
const allScenarios = [
  { name: "direct", label: "direct origin", kind: "origin" },
  { name: "nginx", label: "nginx proxy_pass (keep-alive)", kind: "nginx", needs: useNginx },
  { name: "bare", label: "bare Hono pass-through (workerd)", kind: "worker", scenario: "bare" },
  { name: "floor", label: "safe pass-through floor (header hygiene, timeout; workerd)", kind: "worker", scenario: "floor" },
  { name: "core", label: "gateway core, no plugins (workerd)", kind: "worker", scenario: "core" },
  { name: "default", label: "default pipeline, warm cache", kind: "worker", scenario: "default", warm: true, bindings: { KEY_CACHE_TTL_SECONDS: cfg.warmKeyTtlSeconds, SECRET_CACHE_TTL_SECONDS: "300" } },
  ...[["controller", "an AbortController aborted by setTimeout"], ["race", "a setTimeout raced against the fetch, cleared on its answer (headers only)"]].map(([kind, how]) => ({ name: `floor-timeout-${kind}`, label: `… floor with its timeout as ${how}`, kind: "worker", scenario: `floor-timeout-${kind}`, optIn: true, modes: ["sat"] })),
  { name: "default-queue-discarded", label: "default pipeline, audit batches encoded and dropped (no Queue send)", kind: "worker", scenario: "default", warm: true, optIn: true, modes: ["sat"], bindings: { KEY_CACHE_TTL_SECONDS: cfg.warmKeyTtlSeconds, SECRET_CACHE_TTL_SECONDS: "300", BENCH_AUDIT_QUEUE: "discard" } },
  { name: "default-queue-tiny", label: "default pipeline, audit sends carry tiny bodies (same calls and messages)", kind: "worker", scenario: "default", warm: true, optIn: true, modes: ["sat"], bindings: { KEY_CACHE_TTL_SECONDS: cfg.warmKeyTtlSeconds, SECRET_CACHE_TTL_SECONDS: "300", BENCH_AUDIT_QUEUE: "tiny" } },
  { name: "cold", label: "default pipeline, cold cache (D1 per request)", kind: "worker", scenario: "cold", bindings: { KEY_CACHE_TTL_SECONDS: "0", KEY_NEGATIVE_CACHE_TTL_SECONDS: "0", SECRET_CACHE_TTL_SECONDS: "0" } },
  { name: "jwt", label: "JWT auth (HS256) instead of key-auth, warm", kind: "worker", scenario: "jwt", warm: true, credentials: "jwt", bindings: { SECRET_CACHE_TTL_SECONDS: "300" } },
  // The same with `verifiedCacheSeconds: 0`: jose verifies every request (what jwt cost before
  // verified tokens were reused). Closed loop only, not in the smoke run.
  { name: "jwt-verify-each", label: "… JWT with every token verified (verifiedCacheSeconds: 0)", kind: "worker", scenario: "jwt-verify-each", warm: true, credentials: "jwt", modes: ["sat"], full: true, bindings: { SECRET_CACHE_TTL_SECONDS: "300" } },
  // Rate limit (bench/worker/scenarios.ts BENCH_RATE_LIMIT) on top of the warm default pipeline,
  // far from its limit: leased tokens spent in the isolate. The "near" twins hold one token per
  // lease — a backend call per request, the cost of a subject close to its limit — and run the
  // closed loop only (their throughput is what the note reports). The smoke run leaves them out
  // (the far scenarios already call each backend, for every user's first lease).
  ...[
    { backend: "do", label: "Durable Object backend", limiter: "durable-object" },
    { backend: "upstash", label: "Upstash backend (bridge over local Redis)", limiter: "upstash", needs: useRedis },
  ].flatMap(({ backend, label, limiter, needs }) => [
    { name: `ratelimit-${backend}`, label: `default pipeline + rate limit, ${label}`, kind: "worker", scenario: `ratelimit-${backend}`, warm: true, limiter, needs, bindings: { KEY_CACHE_TTL_SECONDS: cfg.warmKeyTtlSeconds, SECRET_CACHE_TTL_SECONDS: "300" } },
    // A diagnostic, run only when named: a lease call per request, waited on by the subject's other
    // requests in the isolate, with D1 reads before (key) and after (origin secret) the wait. At the
    // fixed rate it is far overloaded, the pattern that made workerd cancel requests which waited
    // on another request's D1 read (docs/design.md, "Key cache guarantee"); --smoke fails on any error.
    { name: `ratelimit-${backend}-near-cold`, label: `… close to its limit, nothing cached (D1 before and after each shared lease call)`, kind: "worker", scenario: `ratelimit-${backend}-near`, limiter, needs, optIn: true, bindings: { KEY_CACHE_TTL_SECONDS: "0", KEY_NEGATIVE_CACHE_TTL_SECONDS: "0", SECRET_CACHE_TTL_SECONDS: "0" } },
    { name: `ratelimit-${backend}-near`, label: `… close to its limit: ${backend === "do" ? "a Durable Object" : "an Upstash"} call per request`, kind: "worker", scenario: `ratelimit-${backend}-near`, warm: true, limiter, needs, modes: ["sat"], full: true, bindings: { KEY_CACHE_TTL_SECONDS: cfg.warmKeyTtlSeconds, SECRET_CACHE_TTL_SECONDS: "300" } },
  ]),
  // Issue #4's "limited pipeline" at its plainest: key-auth and the same far-from-its-limit rate
  // limit, nothing else (no audit, authorize or header rewriting), beside key-auth alone. Closed
  // loop only: the #4 rows are throughput ratios.
  { name: "keyauth", label: "key-auth only (warm), the minimal pipeline with a subject", kind: "worker", scenario: "keyauth", warm: true, modes: ["sat"], bindings: { KEY_CACHE_TTL_SECONDS: cfg.warmKeyTtlSeconds } },
  { name: "limit-do", label: "key-auth + rate limit, Durable Object backend (minimal limited pipeline)", kind: "worker", scenario: "limit-do", warm: true, limiter: "durable-object", modes: ["sat"], bindings: { KEY_CACHE_TTL_SECONDS: cfg.warmKeyTtlSeconds } },
  { name: "limit-upstash", label: "key-auth + rate limit, Upstash backend (minimal limited pipeline)", kind: "worker", scenario: "limit-upstash", warm: true, limiter: "upstash", needs: useRedis, modes: ["sat"], bindings: { KEY_CACHE_TTL_SECONDS: cfg.warmKeyTtlSeconds } },
  ...[["two-copies", "headers copied twice (the gateway's method before session 13)"], ["unsanitized", "copy not stripped of hop-by-hop headers"]].map(([kind, how]) => ({ name: `floor-response-${kind}`, label: `… floor with its response ${how}`, kind: "worker", scenario: `floor-response-${kind}`, optIn: true, modes: ["sat"] })),
  // The floor without one of its parts each: what the runtime charges for each part of safety.
  // Closed loop only, and not in the smoke run: the report's notes give each part's cost.
  ...["timeout", "request-copy", "response-copy"].map((part) => ({ name: `floor-no-${part}`, label: `… floor without its ${part.replace("-", " ")}`, kind: "worker", scenario: `floor-no-${part}`, modes: ["sat"], full: true })),
  // Diagnostics, run only when named (--scenarios bare,chain-audit,…): the default pipeline grown
  // one plugin at a time in workerd, like the micro-benchmark's chains in Node.
  { name: "chain-audit-queue-discarded", label: "core + audit, batches serialized and dropped", kind: "worker", scenario: "chain-audit", warm: true, optIn: true, modes: ["sat"], bindings: { KEY_CACHE_TTL_SECONDS: cfg.warmKeyTtlSeconds, SECRET_CACHE_TTL_SECONDS: "300", BENCH_AUDIT_QUEUE: "discard" } },
  ...["audit", "key-auth", "authorize"].map((step) => ({ name: `chain-${step}`, label: `core + default plugins up to ${step}`, kind: "worker", scenario: `chain-${step}`, warm: true, optIn: true, modes: ["sat"], bindings: { KEY_CACHE_TTL_SECONDS: cfg.warmKeyTtlSeconds, SECRET_CACHE_TTL_SECONDS: "300" } })),
  // The building blocks issue #6 quotes (measured then with Miniflare's subrequest hop): closed loop only.
  ...BLOCKS.map((b) => ({ ...b, kind: "worker", scenario: b.name, optIn: true, modes: ["sat"], ...(b.limiter === "upstash" ? { needs: useRedis } : {}) })),
];
const only = args.scenarios?.split(",");
const scenarios = allScenarios.filter((s) => s.needs !== false && (only ? only.includes(s.name) : !s.optIn && !(smoke && s.full)));
const before = args.before ? treeAt(args.before, path.join(root, "bench", "scratch")) : undefined;
if (before) {
  // Twins of the gateway scenarios, built from the older tree, interleaved with the current ones.
  for (const s of scenarios.filter((x) => x.name === "default" || x.name === "cold")) {
    // Listed before the current scenario by default; --twin-after lists it after (Miniflare's
    // worker order gives the one listed first a few µs: bench/README, "The twins' own bias").
    scenarios.splice(scenarios.indexOf(s) + (args["twin-after"] ? 1 : 0), 0, { ...s, name: `${s.name}@${before.id}`, label: `${s.label} — before (${before.label})`, before: true });
  }
}

const startedAt = Date.now();
const log = (m) => process.stderr.write(`[bench] ${m}\n`);
const sh = (cmd, argv) => {
  try {
    // nginx -v prints to stderr.
    const r = spawnSync(cmd, argv, { encoding: "utf8" });
    return `${r.stdout}${r.stderr}`.trim() || "n/a";
  } catch (e) {
    return (e.stderr || e.stdout || "").toString().trim() || "n/a";
  }
};
const pkgVersion = (name) => JSON.parse(readFileSync(path.join(root, "node_modules", name, "package.json"), "utf8")).version;

function machineInfo() {
  const cpu = os.cpus()[0]?.model ?? "unknown";
  return {
    date: new Date().toISOString(),
    host: `${cpu}, ${ncpu} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}`,
    loadavg: os.loadavg().map((x) => x.toFixed(2)).join(" "),
    versions: {
      node: process.version,
      workerd: pkgVersion("workerd"),
      miniflare: pkgVersion("miniflare"),
      wrangler: pkgVersion("wrangler"),
      hono: pkgVersion("hono"),
      "drizzle-orm": pkgVersion("drizzle-orm"),
      nginx: useNginx ? sh("nginx", ["-v"]).replace("nginx version: ", "") : "not installed",
      wrk: which("wrk") ? sh("wrk", ["-v"]).split("\n")[0].split(" [")[0] : "not installed",
      commit: sh("git", ["-C", root, "rev-parse", "--short", "HEAD"]),
    },
    pinning: which("taskset") ? `servers on CPU ${CPUS.server}, load generators on CPU ${CPUS.load}` : "taskset missing: not pinned",
    config: cfg,
  };
}

// ── servers ────────────────────────────────────────────────────────────────────
async function startServers() {
  const origin = await startOrigin({ port: PORTS.origin, dir: scratch, cpus: CPUS.server, useNginx });
  const nginx = scenarios.some((s) => s.kind === "nginx") ? await startNginxProxy({ port: PORTS.nginx, originPort: PORTS.origin, dir: scratch, cpus: CPUS.server }) : undefined;
  // Redis and the bridge start while the worker is bundled.
  const upstashReady = scenarios.some((s) => s.limiter === "upstash")
    ? startUpstash({ redisPort: PORTS.redis, bridgePort: PORTS.upstashBridge, dir: scratch, cpus: CPUS.server, token: UPSTASH_TOKEN })
    : undefined;
  upstashReady?.catch(() => {}); // awaited below; a failure surfaces there
  const scriptPath = await buildWorker(scratch);
  const upstash = await upstashReady;
  const limiterBindings = (s) =>
    s.limiter === "upstash" ? { UPSTASH_REDIS_REST_URL: upstash.url, UPSTASH_REDIS_REST_TOKEN: UPSTASH_TOKEN } : {};
  // limit-do uses ratelimit-do's objects when both run (the same limit and users; counters of a
  // million an hour): a third namespace of 1,000 SQLite-backed objects kept in memory made
  // workerd's SQLite fail with SQLITE_NOMEM, D1 included, in the first full run that had one.
  const sharedLimiter = (s) => (s.name === "limit-do" && scenarios.some((x) => x.name === "ratelimit-do") ? { scriptName: "ratelimit-do" } : {});
  const workers = scenarios
    .filter((s) => s.kind === "worker")
    .map((s, i) => ({
      name: s.name,
      scenario: s.scenario,
      port: PORTS.workerFirst + i,
      bindings: { ...(s.bindings ?? {}), ...limiterBindings(s) },
      // SQLite-backed, as wrangler.toml declares it (the class uses the synchronous KV API). Kept in
      // memory for the run: workerd evicts an object ~10 s after its last call (production: after
      // 70–140 s), and evicting then re-creating 1,000 objects and their databases mid-run landed
      // as bursts of CPU in whichever scenario ran next.
      durableObjects: s.durableObjects ?? (s.limiter === "durable-object" ? { LIMITER: { className: "LimiterDurableObject", useSQLite: true, unsafePreventEviction: true, ...sharedLimiter(s) } } : undefined),
      before: s.before,
    }));
  if (before) {
    const beforePath = await buildWorker(scratch, before.dir, `bench-worker-${before.id}`);
    for (const w of workers) if (w.before) w.scriptPath = beforePath;
  }
  const workerd = await startWorkerd({
    scriptPath,
    workers,
    cpus: CPUS.server,
    compatibilityDate: /compatibility_date\s*=\s*"([^"]+)"/.exec(readFileSync(path.join(root, "wrangler.toml"), "utf8"))[1],
    bindings: { ORIGIN_URL: `http://127.0.0.1:${PORTS.origin}`, ORIGIN_TOKEN, ADMIN_TOKEN, SECRETS_KEY, JWT_SECRET },
  });
  // The Upstash backend (bridge + Redis) counts as server CPU in its scenarios — as the Durable
  // Objects do, inside workerd — and as ours (not foreign) in every other one.
  const backendPids = () => upstash?.pids() ?? [];
  for (const s of scenarios) {
    if (s.kind === "origin") Object.assign(s, { port: PORTS.origin, pids: origin.pids, otherPids: backendPids });
    if (s.kind === "nginx") Object.assign(s, { port: PORTS.nginx, pids: nginx.pids, otherPids: () => [...origin.pids(), ...backendPids()] });
    if (s.kind === "worker") {
      const port = workers.find((w) => w.name === s.name).port;
      if (s.limiter === "upstash") Object.assign(s, { port, pids: () => [...workerd.pids(), ...backendPids()], otherPids: origin.pids });
      else Object.assign(s, { port, pids: workerd.pids, otherPids: () => [...origin.pids(), ...backendPids()] });
    }
  }
  return { origin, workerd };
}

async function workerStats(s) {
  if (s.kind !== "worker") return undefined;
  return (await fetch(`http://127.0.0.1:${s.port}/__bench/stats`)).json();
}

/** The origin credential goes into the encrypted secret store through the admin API, as an operator would. */
async function storeOriginSecret() {
  // Any worker running the gateway app (bare and the floors are hand-written pass-throughs).
  const w = scenarios.find((s) => s.kind === "worker" && s.name !== "bare" && !s.name.startsWith("floor"));
  if (!w) return;
  const res = await fetch(`http://127.0.0.1:${w.port}/admin/v1/secrets/ORIGIN_TOKEN`, {
    method: "PUT",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ value: ORIGIN_TOKEN }),
  });
  if (!res.ok) throw new Error(`storing the origin secret failed: ${res.status} ${await res.text()}`);
}

/** HS256 JWTs (sub = proxy user id, 2 h expiry) for the same users whose keys are in the load. */
async function jwtFile(userIds) {
  const { SignJWT } = await import("jose");
  const secret = new TextEncoder().encode(JWT_SECRET);
  const exp = Math.floor(Date.now() / 1000) + 7200;
  const tokens = await Promise.all(userIds.map((sub) => new SignJWT({}).setProtectedHeader({ alg: "HS256" }).setSubject(sub).setExpirationTime(exp).sign(secret)));
  const file = path.join(scratch, "load-jwts.txt");
  writeFileSync(file, `${tokens.join("\n")}\n`);
  return file;
}

// ── one measurement ────────────────────────────────────────────────────────────
const PATH = "/api/orders/42";

async function loadOnce(s, mode, opts) {
  const url = `http://127.0.0.1:${s.port}${PATH}`;
  // Every scenario gets the same requests (with a key, or a JWT for the same users), so only what
  // serves them differs.
  const keysFile = s.credentials === "jwt" ? opts.jwtFile : opts.keysFile;
  if (mode === "sat") {
    return useWrk
      ? wrkClosed({ url, connections: cfg.connections, durationMs: opts.durationMs, keysFile, cpus: CPUS.load })
      : nodeLoad({ mode: "closed", url, connections: cfg.connections, durationMs: opts.durationMs, keysFile }, CPUS.load);
  }
  if (mode === "fixed") return nodeLoad({ mode: "fixed", url, connections: cfg.fixedConnections, rate: opts.rate, durationMs: opts.durationMs, warmupMs: cfg.fixedWarmupMs, keysFile }, CPUS.load);
  return nodeLoad({ mode: "seq", url, connections: 1, durationMs: opts.durationMs, keysFile }, CPUS.load);
}

/** Runs one load, with CPU accounting; retries a round disturbed by foreign load. */
async function measure(s, mode, opts) {
  for (let attempt = 0; ; attempt++) {
    const st0 = await workerStats(s);
    const win = startCpuWindow(s.pids(), s.otherPids());
    const r = await loadOnce(s, mode, opts);
    const cpu = win.end();
    const st1 = await workerStats(s);
    // A smoke run fails on any error; a full run records them (an overloaded scenario at the fixed
    // rate may see resets) and the report shows them next to the figures.
    if (r.errors && smoke) throw new Error(`${s.name}/${mode}: ${r.errors} of ${r.requests} requests failed (${r.firstError})`);
    if (r.errors) log(`  ${s.name}/${mode}: ${r.errors} of ${r.requests} requests failed (${r.firstError}); recorded`);
    // A rate limit whose backend fails admits the request (fail open) and looks fast: a smoke run
    // fails on it; a full run records it and the report says so next to the figures.
    const limiterFailures = st0 && st1 ? st1.limiterFailures - st0.limiterFailures : 0;
    if (limiterFailures && smoke) throw new Error(`${s.name}/${mode}: the limiter backend failed ${limiterFailures} times (see the worker log above)`);
    if (limiterFailures) log(`  ${s.name}/${mode}: the limiter backend failed ${limiterFailures} times; recorded`);
    const result = {
      ...r,
      cpuUsPerReq: cpu.serverUs / r.requests,
      foreign: cpu.foreign,
      steal: cpu.steal,
      d1Statements: st0 && st1 ? st1.d1Statements - st0.d1Statements : undefined,
      d1Requests: st0 && st1 ? st1.requests - st0.requests : undefined,
      // Audit Queue sends and messages in this window (an older tree's worker does not count them).
      ...(st0?.auditSends !== undefined && st1 ? { auditSends: st1.auditSends - st0.auditSends, auditMessages: st1.auditMessages - st0.auditMessages } : {}),
      // Lease calls to the limiter backend in this window (rate-limit scenarios): what leasing saves.
      ...(st0?.limiterCalls !== undefined && st1 ? { limiterCalls: st1.limiterCalls - st0.limiterCalls } : {}),
      ...(limiterFailures ? { limiterFailures } : {}),
      attempt,
    };
    // Past the retry budget (a machine that stays busy), disturbed rounds are recorded, not repeated.
    const overBudget = args["retry-budget-minutes"] && Date.now() - startedAt > Number(args["retry-budget-minutes"]) * 60_000;
    if (cpu.foreign <= cfg.maxForeign || attempt >= cfg.retries || overBudget) {
      result.rejected = cpu.foreign > cfg.maxForeign;
      return result;
    }
    log(`  ${s.name}/${mode}: foreign load ${(cpu.foreign * 100).toFixed(0)}% > ${cfg.maxForeign * 100}%, repeating`);
  }
}

// ── micro-benchmark (separate process, pinned to the server core) ─────────────
function runMicro(tree) {
  return new Promise((resolve, reject) => {
    const argv = ["--expose-gc", path.join(root, "bench", "micro.mjs"), "--json", ...(smoke ? ["--smoke"] : []), ...(tree ? ["--tree", tree, "--no-soak"] : [])];
    const child = spawn(which("taskset") ? "taskset" : process.execPath, which("taskset") ? ["-c", CPUS.server, process.execPath, ...argv] : argv, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("close", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").pop())) : reject(new Error(`micro-benchmark exited ${code}`))));
  });
}

/** A small seeded PRNG (mulberry32): the rounds' orders are reproducible from the recorded seed. */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A Fisher–Yates shuffle of a copy of `list`. */
function shuffled(list, random) {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** bench/micro-workerd.mjs in a child process (its own workerd, pinned to the server core). */
function runWorkerdMicro() {
  return new Promise((resolve, reject) => {
    const argv = [path.join(root, "bench", "micro-workerd.mjs"), "--json", "--cpus", CPUS.server, ...(smoke ? ["--smoke"] : [])];
    const child = spawn(which("taskset") ? "taskset" : process.execPath, which("taskset") ? ["-c", CPUS.load, process.execPath, ...argv] : argv, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("close", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").pop())) : reject(new Error(`workerd micro-benchmark exited ${code}`))));
  });
}

/** Caveats the results file states next to the numbers. */
function notes() {
  const n = [
    "Miniflare runs D1 (and Durable Objects) inside the same workerd process as the worker, so the cold-cache figures include both sides of each D1 call; in production each is a network round trip instead.",
    `The warm scenarios run with KEY_CACHE_TTL_SECONDS=${cfg.warmKeyTtlSeconds} (the maximum the gateway accepts; the shipped default is 5): with ${cfg.loadKeys} keys in rotation, a 5 s TTL re-reads every key from D1 every 5 s, which is the D1 path, not the warm one. Before each warm scenario's turn in a round, every key is presented once (not measured), so the measured windows, well inside the TTL, see a warm cache; the D1 figures count the measured windows only, and the target row computes the steady state of a busy isolate, (keys ÷ TTL) lookups a second (last_used_at is kept by the audit pipeline in batches, not per request).`,
    "Audit events go to a local Queue without a consumer: the figures are the request path's cost; the consumer's batched D1 writes run in separate invocations in production (bench/audit-load.mjs measures them).",
    "The micro-benchmark's header step renders an identity header only (no D1 there for the secret store); in workerd the default pipeline injects the origin credential from the encrypted store, cached per user for SECRET_CACHE_TTL_SECONDS=300 in the warm scenarios.",
    "The cold scenario is the same gateway with KEY_CACHE_TTL_SECONDS=0: nothing is cached, so every request resolves its key in D1 exactly as a never-seen key does.",
  ];
  if (scenarios.some((s) => s.limiter)) {
    n.push(
      "Rate-limit scenarios: `rateLimit({ limit: 1_000_000, window: \"1h\" })` per proxy user after authorize, far from the limit: each user's isolate holds a lease of up to 100 tokens (`leaseMax: \"auto\"`), so a backend call comes once per ~100 of a user's requests (the *limiter calls/req* column); overrides are read once per isolate per TTL for all users. The Durable Objects run inside the same workerd (both sides of each call are in its CPU; in production each is a network hop), SQLite-backed with their files on a tmpfs and kept in memory for the run (workerd would evict an idle object after ~10 s, production after 70–140 s). The Upstash scenarios call the bridge (`scripts/upstash-bridge.mjs`) over a Redis the harness starts; their server CPU includes the bridge and Redis.",
    );
  }
  if (scenarios.some((s) => s.name.startsWith("block-"))) {
    n.push(
      "Building blocks (*bare + …* rows): the references issue #6 quotes — SHA-256 + in-isolate map lookup + header rewrite 0.85, one Durable Object call per request 0.49, one `@upstash/ratelimit` call 0.29, one Queue send 0.40 of bare — each written the plainest way on bare (bench/worker/entry.ts, `blockApp`). The issue's figures were taken with Miniflare's subrequest hop, which made bare dearer (bench/README.md, \"Building blocks\").",
    );
  }
  if (!useRedis) n.push("redis-server is not installed: the Upstash rate-limit scenarios are missing.");
  if (!useNginx) n.push("nginx is not installed: the origin is a Node server and the nginx reference is missing.");
  if (!useWrk) n.push("wrk is not installed: closed-loop runs used the Node generator, which saturates before fast servers do.");
  return n;
}

// ── main ───────────────────────────────────────────────────────────────────────
async function main() {
  const t0 = Date.now();
  const meta = machineInfo();
  log(`${smoke ? "smoke" : "full"} run: ${scenarios.map((s) => s.name).join(", ")}; ${cfg.rounds} round(s); ${meta.pinning}`);
  const { workerd } = await startServers();
  const db = await workerd.miniflare.getD1Database("DB", scenarios.find((s) => s.kind === "worker")?.name);
  const seeded = await seed(db, { users: cfg.users, loadKeys: cfg.loadKeys, permission: "bench:read", scratch });
  log(`servers up, D1 seeded (${seeded.counts.users} users, ${seeded.counts.keys} keys, ${seeded.keys.length} in the load) in ${Date.now() - t0} ms`);
  const opts = { keysFile: seeded.keysFile, jwtFile: await jwtFile(seeded.loadUserIds) };
  await storeOriginSecret();

  // Warm-up (JIT, connection pools, the warm scenarios' key caches), then the bare maximum that
  // sets the fixed arrival rate.
  for (const s of scenarios) await loadOnce(s, "sat", { ...opts, durationMs: cfg.warmMs });
  const bare = scenarios.find((s) => s.name === "bare");
  const calib = [];
  if (bare) for (let i = 0; i < (smoke ? 1 : 2); i++) calib.push((await loadOnce(bare, "sat", { ...opts, durationMs: cfg.satMs })).rps);
  const rate = Math.max(50, Math.round((median(calib) || 1000) * 0.5));
  log(`bare maximum ≈ ${Math.round(median(calib))} rps → fixed arrival rate ${rate} rps`);

  // D1 statements per request over the whole measured run (all modes), per workerd scenario: the
  // steady-state figure, which a 5 s window can miss when cached keys expire together.
  const d1Start = Object.fromEntries(await Promise.all(scenarios.filter((s) => s.kind === "worker").map(async (s) => [s.name, await workerStats(s)])));
  const rounds = [];
  const random = mulberry32(cfg.seed);
  for (let r = 0; r < cfg.rounds; r++) {
    // Interleave: every round runs every scenario, in a fresh random order (seeded, so a run can be repeated).
    const order = shuffled(scenarios, random);
    const round = {};
    for (const s of order) {
      if (cfg.settleMs) await new Promise((resolve) => setTimeout(resolve, cfg.settleMs));
      // Warm scenarios: present every key once first, so the measured windows (well inside the
      // key TTL) see the cache as a busy isolate does, not the expiry burst left by an idle minute.
      if (s.warm) await nodeLoad({ mode: "closed", url: `http://127.0.0.1:${s.port}${PATH}`, connections: 8, durationMs: 60_000, maxRequests: seeded.keys.length, keysFile: s.credentials === "jwt" ? opts.jwtFile : opts.keysFile }, CPUS.load);
      const modes = s.modes ?? ["sat", "fixed", "seq"];
      const sat = await measure(s, "sat", { ...opts, durationMs: cfg.satMs });
      const fixed = modes.includes("fixed") ? await measure(s, "fixed", { ...opts, durationMs: cfg.fixedMs, rate }) : undefined;
      const seq = modes.includes("seq") ? await measure(s, "seq", { ...opts, durationMs: cfg.seqMs }) : undefined;
      round[s.name] = { sat, ...(fixed ? { fixed } : {}), ...(seq ? { seq } : {}) };
      log(
        `round ${r + 1}/${cfg.rounds} ${s.name.padEnd(8)} ${Math.round(sat.rps)} rps, ${sat.cpuUsPerReq.toFixed(1)} µs CPU/req` +
          (fixed ? ` | @${rate}/s p99 ${fixed.latencyMs.p99.toFixed(2)} ms` : "") +
          (seq ? ` | seq p50 ${seq.latencyMs.p50.toFixed(3)} ms` : "") +
          (sat.auditSends ? ` | ${(sat.requests / sat.auditSends).toFixed(0)} req/audit send` : "") +
          ` | foreign ${(100 * Math.max(...[sat, fixed, seq].filter(Boolean).map((m) => m.foreign))).toFixed(0)}%`,
      );
    }
    rounds.push(round);
  }

  const d1 = {};
  for (const [name, st0] of Object.entries(d1Start)) {
    const st1 = await workerStats(scenarios.find((s) => s.name === name));
    d1[name] = { statements: st1.d1Statements - st0.d1Statements, requests: st1.requests - st0.requests };
    d1[name].perRequest = d1[name].statements / Math.max(1, d1[name].requests);
  }

  let micro;
  if (!args["no-micro"]) {
    log("micro-benchmark and soak (app.fetch in a loop, origin stubbed)…");
    micro = await runMicro();
    if (before) micro.before = { sha: before.label, ...(await runMicro(before.dir)) };
  }
  await stopAll();
  if (micro) {
    log("micro-benchmark in workerd (the same chains, app.fetch in a loop inside the runtime)…");
    micro.workerd = await runWorkerdMicro();
  }

  let bundle;
  if (!smoke && !args["no-bundle"]) {
    log("deployed bundle: wrangler deploy --dry-run, start-up time…");
    bundle = await measureBundle(scratch, CPUS.server);
  }

  if (before) meta.before = before.label;
  const result = { meta, rate, calib, scenarios: scenarios.map(({ name, label, kind, modes }) => ({ name, label, kind, ...(modes ? { modes } : {}) })), rounds, d1, micro, bundle, notes: notes(), seconds: (Date.now() - t0) / 1000 };
  writeFileSync(path.join(scratch, "last-run.json"), JSON.stringify(result, null, 2));
  if (smoke) {
    log(`smoke passed in ${result.seconds.toFixed(1)} s (no results file written)`);
    return;
  }
  const out = args.out ?? path.join(root, "bench", "results");
  const file = writeReport(result, out);
  log(`wrote ${path.relative(root, file)} in ${result.seconds.toFixed(0)} s`);
}

for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => stopAll().finally(() => process.exit(130)));
main().catch(async (err) => {
  log(`FAILED: ${err.stack ?? err}`);
  await stopAll();
  process.exit(1);
});
