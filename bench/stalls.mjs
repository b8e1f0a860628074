#!/usr/bin/env node
// `npm run bench:stalls`: why p99 at a fixed 50% load is tens of milliseconds in workerd even for
// a bare pass-through, when the direct origin and nginx stay at a few ms (bench/README.md,
// "p99 at 50% load: workerd's own stalls").
//
//   npm run bench:stalls                                   4 workers, 3 rounds of 6 s at 2,000 rps
//   npm run bench:stalls -- --rate 2500 --seconds 8 --rounds 5
//   npm run bench:stalls -- --no-perf                      skip the perf attribution
//   npm run bench:stalls -- --out DIR                      where the .md and .json go (bench/results)
//
// Runs plain `workerd serve` (no Miniflare, no gateway) with four tiny workers, each loaded in
// turn at the same fixed arrival rate by bench/lib/loadgen.mjs (1 s unrecorded warm-up first):
//   static          returns a Response it builds (no subrequest)
//   static-headers  the same, plus 8 `new Headers(request.headers)` copies it drops at once
//   bare            fetch() pass-through to the origin (the benchmark's bare Hono, without Hono)
//   bare-copies     the same, copying the request headers and the response (as the gateway's floor does)
// Every worker notes when requests *start*: a gap of more than 10 ms between two starts while
// the generator sends one every 0.5 ms is a stall of the isolate's thread, seen from inside.
// With `perf` installed, perf samples workerd's main thread (CLOCK_REALTIME timestamps, so they
// line up with the gaps) and the report names the functions it ran during the gaps.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { nodeLoad } from "./lib/load.mjs";
import { pin } from "./lib/proc.mjs";
import { startChild, startOrigin, stopAll, waitForPort, which } from "./lib/servers.mjs";
import { fmt, median } from "./lib/stats.mjs";

const root = path.resolve(import.meta.dirname, "..");
const { values: args } = parseArgs({
  options: {
    rate: { type: "string", default: "2000" },
    seconds: { type: "string", default: "6" },
    rounds: { type: "string", default: "3" },
    "no-perf": { type: "boolean", default: false },
    out: { type: "string" },
  },
});
const RATE = Number(args.rate);
const SECONDS = Number(args.seconds);
const ROUNDS = Number(args.rounds);
const WARMUP_MS = 1000;
const GAP_MS = 10;
const CPUS = os.cpus().length >= 2 ? { server: "1", load: "0" } : { server: "0", load: "0" };
const usePerf = !args["no-perf"] && Boolean(which("perf"));
const scratch = path.join(root, "bench", "scratch", "stalls");
const outDir = path.resolve(args.out ?? path.join(root, "bench", "results"));
mkdirSync(scratch, { recursive: true });

const ORIGIN_PORT = 8931;
const WORKERS = [
  { name: "static", port: 8932, what: "returns a Response it builds (no subrequest)", body: `return new Response(BODY, { headers: { "content-type": "application/json" } });` },
  {
    name: "static-headers",
    port: 8933,
    what: "the same, plus 8 `new Headers(request.headers)` copies dropped at once",
    body: `for (let i = 0; i < 8; i++) new Headers(request.headers).set("x-copy", String(i));\n    return new Response(BODY, { headers: { "content-type": "application/json" } });`,
  },
  { name: "bare", port: 8934, what: "fetch() pass-through to the origin", body: `return fetch(env.ORIGIN + url.pathname);` },
  {
    name: "bare-copies",
    port: 8935,
    what: "the same, copying the request headers and the response (as the gateway's floor does)",
    body: `const headers = new Headers(request.headers);\n    headers.delete("connection");\n    const res = await fetch(env.ORIGIN + url.pathname, { headers });\n    const copy = new Response(res.body, res);\n    copy.headers.set("x-request-id", "req_0");\n    return copy;`,
  },
];

/** Each worker records the gaps between request starts (Date.now() advances with each I/O event). */
function workerSource(body) {
  return `const BODY = '{"id":42,"status":"shipped","items":[1,2,3]}';
let last = 0;
let gaps = [];
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/__stalls") {
      const out = gaps;
      gaps = [];
      last = 0;
      return Response.json(out);
    }
    const now = Date.now();
    if (last && now - last > ${GAP_MS}) gaps.push([last, now - last]);
    last = now;
    ${body}
  },
};
`;
}

/** A Cap'n Proto constant name for a worker (camelCase, no dashes or underscores). */
const ident = (name) => `w${name.split("-").map((p) => p[0].toUpperCase() + p.slice(1)).join("")}`;

function capnpConfig(compatibilityDate) {
  const services = WORKERS.map((w) => `(name = "${w.name}", worker = .${ident(w.name)})`).join(",\n    ");
  const sockets = WORKERS.map((w) => `(name = "${w.name}", address = "127.0.0.1:${w.port}", http = (), service = "${w.name}")`).join(",\n    ");
  const workers = WORKERS.map(
    (w) => `const ${ident(w.name)} :Workerd.Worker = (
  modules = [ (name = "${w.name}.mjs", esModule = embed "${w.name}.mjs") ],
  compatibilityDate = "${compatibilityDate}",
  bindings = [ (name = "ORIGIN", text = "http://127.0.0.1:${ORIGIN_PORT}") ],
  globalOutbound = "net",
);`,
  );
  return `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    ${services},
    (name = "net", network = (allow = ["public", "private", "local"]))
  ],
  sockets = [
    ${sockets}
  ],
);
${workers.join("\n")}
`;
}


const compatibilityDate = readFileSync(path.join(root, "wrangler.toml"), "utf8").match(/compatibility_date\s*=\s*"([^"]+)"/)[1];
for (const w of WORKERS) writeFileSync(path.join(scratch, `${w.name}.mjs`), workerSource(w.body));
writeFileSync(path.join(scratch, "config.capnp"), capnpConfig(compatibilityDate));

const workerdBin = path.join(root, "node_modules", "workerd", "bin", "workerd");
// The Node origin (not nginx): the same one on every machine, pinned to the server core.
await startOrigin({ port: ORIGIN_PORT, dir: scratch, cpus: CPUS.server, useNginx: false });
const workerd = startChild(workerdBin, ["serve", path.join(scratch, "config.capnp"), "--experimental"], { cwd: scratch });
for (const w of WORKERS) {
  await waitForPort(w.port).catch((e) => {
    throw new Error(`${e.message}\nworkerd: ${workerd.stderrText()}`);
  });
}
pin(workerd.pid, CPUS.server);

const stalls = async (w) => (await fetch(`http://127.0.0.1:${w.port}/__stalls`)).json();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** perf samples of workerd's main thread (its tid is its pid) for one load, timestamps in epoch ms. */
function perfStart(file) {
  return spawn("perf", ["record", "-q", "-F", "2999", "--clockid", "CLOCK_REALTIME", "-t", String(workerd.pid), "-o", file], { stdio: "ignore" });
}
async function perfStop(child) {
  child.kill("SIGINT");
  await new Promise((r) => child.on("exit", r));
}
function perfSamples(file) {
  const out = spawnSync("perf", ["script", "-i", file, "-F", "time,ip,sym"], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 }).stdout ?? "";
  return out
    .split("\n")
    .map((l) => l.trim().match(/^([\d.]+):\s+[0-9a-f]+\s*(.*)$/))
    .filter(Boolean)
    .map((m) => ({ t: Number(m[1]) * 1000, sym: m[2].replace(/\s+\(.*\)$/, "").replace(/<.*>/g, "<…>").slice(0, 90) || "[unknown]" }));
}

/**
 * Functions that destroy what a request left behind: V8 wrappers let go (`detachWrapper`,
 * `HeapTracer::ResetRoot`), the C++ objects behind them (`~Headers`, `jsg::Ref`, kj disposers) and
 * the allocator taking the memory back (tcmalloc). Outside the gaps they are a few percent.
 */
const TEARDOWN = /detachWrapper|HeapTracer::ResetRoot|~Headers|~Request|~Response|~Body|jsg::Ref<.*>::~Ref|~Refcounted|CppgcShim|Dispose|disposeImpl|tcmalloc|^free$|cfree/;
const teardownShare = (map, total) => (total ? [...map].filter(([sym]) => TEARDOWN.test(sym)).reduce((n, [, c]) => n + c, 0) / total : NaN);

const results = Object.fromEntries(WORKERS.map((w) => [w.name, []]));
const perfBySym = Object.fromEntries(WORKERS.map((w) => [w.name, { inGaps: new Map(), inGapsTotal: 0, outside: new Map(), outsideTotal: 0 }]));
console.log(`[stalls] workerd ${spawnSync(workerdBin, ["--version"], { encoding: "utf8" }).stdout.trim()}; ${RATE} rps for ${SECONDS} s (+${WARMUP_MS / 1000} s warm-up), ${ROUNDS} rounds; perf ${usePerf ? "on" : "off"}`);
for (let round = 1; round <= ROUNDS; round++) {
  for (const w of WORKERS) {
    await sleep(1500);
    await stalls(w);
    const perfFile = path.join(scratch, `${w.name}.perf.data`);
    const perf = usePerf ? perfStart(perfFile) : undefined;
    if (perf) await sleep(300);
    const t0 = Date.now();
    const load = await nodeLoad({ mode: "fixed", url: `http://127.0.0.1:${w.port}/api/orders/42`, connections: 128, rate: RATE, durationMs: SECONDS * 1000, warmupMs: WARMUP_MS }, CPUS.load);
    if (perf) await perfStop(perf);
    // Gaps in the warm-up (plus the generator's ~0.1 s start) are left out, as its latencies are.
    const measuredFrom = t0 + WARMUP_MS + 150;
    const gaps = (await stalls(w)).filter(([at]) => at >= measuredFrom);
    const measuredMs = SECONDS * 1000;
    const stalled = gaps.reduce((s, [, d]) => s + d, 0);
    const r = { round, p50: load.latencyMs.p50, p99: load.latencyMs.p99, p999: load.latencyMs.p999, max: load.latencyMs.max, errors: load.errors, gaps: gaps.length, gapsPerSecond: gaps.length / SECONDS, gapMedianMs: median(gaps.map(([, d]) => d)), gapMaxMs: Math.max(0, ...gaps.map(([, d]) => d)), stalledShare: stalled / measuredMs, gapList: gaps };
    results[w.name].push(r);
    if (perf) {
      const agg = perfBySym[w.name];
      for (const s of perfSamples(perfFile)) {
        if (s.t < measuredFrom) continue;
        const inGap = gaps.some(([at, d]) => s.t >= at && s.t <= at + d);
        const map = inGap ? agg.inGaps : agg.outside;
        map.set(s.sym, (map.get(s.sym) ?? 0) + 1);
        if (inGap) agg.inGapsTotal++;
        else agg.outsideTotal++;
      }
    }
    console.log(`[stalls] round ${round}/${ROUNDS} ${w.name.padEnd(14)} p50 ${fmt(r.p50, 2)} p99 ${fmt(r.p99, 2)} max ${fmt(r.max, 1)} ms | ${r.gaps} gaps > ${GAP_MS} ms (median ${fmt(r.gapMedianMs, 0)}, max ${r.gapMaxMs} ms), ${fmt(100 * r.stalledShare, 1)}% of the time`);
  }
}
await stopAll();

// ── report ────────────────────────────────────────────────────────────────────────────────────
const date = new Date();
const day = date.toISOString().slice(0, 10);
let base = `stalls-${day}`;
for (let i = 2; existsSync(path.join(outDir, `${base}.md`)); i++) base = `stalls-${day}-${i}`;
const med = (name, key) => median(results[name].map((r) => r[key]));
const rng = (name, key, d) => {
  const v = results[name].map((r) => r[key]);
  return `${fmt(median(v), d)} (${fmt(Math.min(...v), d)}–${fmt(Math.max(...v), d)})`;
};
const cpu = os.cpus()[0]?.model ?? "unknown CPU";
const lines = [
  `# workerd's own stalls at a fixed load — ${date.toISOString().slice(0, 16).replace("T", " ")} UTC`,
  "",
  `- Machine: ${cpu}, ${os.cpus().length} cores, Linux ${os.release()}; workerd ${spawnSync(workerdBin, ["--version"], { encoding: "utf8" }).stdout.trim()}, Node ${process.version}`,
  `- \`npm run bench:stalls -- --rate ${RATE} --seconds ${SECONDS} --rounds ${ROUNDS}\`: plain \`workerd serve\` (no Miniflare, no gateway), workerd and the origin on CPU ${CPUS.server}, the generator on CPU ${CPUS.load}; ${RATE} requests/s at fixed times for ${SECONDS} s after ${WARMUP_MS / 1000} s unrecorded, 128 keep-alive connections; medians (min–max) of ${ROUNDS} rounds`,
  `- A *gap* is more than ${GAP_MS} ms between two request starts seen inside the worker, while the generator sends one every ${fmt(1000 / RATE, 2)} ms: the isolate's thread was busy with something else.`,
  "",
  `| worker | what it does | p50 ms | p99 ms | max ms | gaps/s | median gap ms | longest gap ms | time in gaps |${usePerf ? " teardown in gaps (perf) | teardown outside |" : ""}`,
  `|---|---|---:|---:|---:|---:|---:|---:|---:|${usePerf ? "---:|---:|" : ""}`,
  ...WORKERS.map((w) => {
    const a = perfBySym[w.name];
    const perfCols = usePerf ? ` ${fmt(100 * teardownShare(a.inGaps, a.inGapsTotal), 0)}% | ${fmt(100 * teardownShare(a.outside, a.outsideTotal), 1)}% |` : "";
    return `| ${w.name} | ${w.what} | ${rng(w.name, "p50", 2)} | ${rng(w.name, "p99", 2)} | ${rng(w.name, "max", 1)} | ${rng(w.name, "gapsPerSecond", 2)} | ${fmt(med(w.name, "gapMedianMs"), 0)} | ${rng(w.name, "gapMaxMs", 0)} | ${fmt(100 * med(w.name, "stalledShare"), 1)}% |${perfCols}`;
  }),
  "",
  ...(usePerf ? ["*Teardown*: the share of workerd main-thread samples in functions that destroy what requests left behind — V8 wrappers let go (`Wrappable::detachWrapper`, `HeapTracer::ResetRoot`), the C++ objects behind them (`~Headers`, `jsg::Ref`, kj disposers) and tcmalloc taking the memory back.", ""] : []),
];
if (usePerf) {
  lines.push(
    "## What workerd's main thread ran during the gaps (perf)",
    "",
    "perf samples of workerd's main thread at ~3 kHz over the recorded seconds, split by whether they fall inside a gap; the top functions of each worker's samples in gaps, against their share outside gaps.",
    "",
  );
  for (const w of WORKERS) {
    const agg = perfBySym[w.name];
    if (!agg.inGapsTotal) {
      lines.push(`- **${w.name}**: no samples inside gaps.`);
      continue;
    }
    const top = [...agg.inGaps.entries()].sort((a, b) => b[1] - a[1]).slice(0, 8);
    lines.push(`**${w.name}** — ${agg.inGapsTotal} samples in gaps, ${agg.outsideTotal} outside:`, "", "| function | in gaps | outside gaps |", "|---|---:|---:|");
    for (const [sym, n] of top) lines.push(`| \`${sym}\` | ${fmt((100 * n) / agg.inGapsTotal, 1)}% | ${fmt((100 * (agg.outside.get(sym) ?? 0)) / Math.max(1, agg.outsideTotal), 1)}% |`);
    lines.push("");
  }
}
mkdirSync(outDir, { recursive: true });
writeFileSync(path.join(outDir, `${base}.md`), `${lines.join("\n")}\n`);
writeFileSync(path.join(outDir, `${base}.json`), `${JSON.stringify({ date: date.toISOString(), rate: RATE, seconds: SECONDS, rounds: ROUNDS, cpu, results, perf: usePerf ? Object.fromEntries(Object.entries(perfBySym).map(([k, v]) => [k, { inGapsTotal: v.inGapsTotal, outsideTotal: v.outsideTotal, inGaps: Object.fromEntries([...v.inGaps].sort((a, b) => b[1] - a[1]).slice(0, 30)) }])) : null }, null, 1)}\n`);
console.log(`[stalls] wrote ${path.relative(process.cwd(), path.join(outDir, `${base}.md`))}`);
process.exit(0);
