#!/usr/bin/env node
// The per-plugin micro-benchmark in workerd: the chains of bench/micro.mjs (driver, bare, floor,
// core, then the default pipeline one plugin at a time, then the rate limit on top), run by the
// benchmark worker's "micro" scenario (bench/worker/micro-workerd.ts) through app.fetch in a loop,
// origin stubbed, key cache warm — in the runtime the targets are judged on. workerd's clocks
// stand still while JavaScript runs, so CPU is read from /proc/<pid>/task/*/schedstat (ns, every
// thread of workerd) around each batch.
//
//   node bench/micro-workerd.mjs              table on stdout
//   node bench/micro-workerd.mjs --json       one JSON line (what `npm run bench` embeds)
//   node bench/micro-workerd.mjs --smoke      a few requests per chain (CI: the harness cannot rot)
//
// Rounds are interleaved (every chain once per round); a plugin's step is the median over rounds
// of (chain − the chain before it) within one round, so drift between rounds cancels out.
import { readFileSync, readdirSync, mkdirSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { buildWorker } from "./lib/build.mjs";
import { workerdMicroRows } from "./lib/report.mjs";
import { startWorkerd, stopAll } from "./lib/servers.mjs";

const { values: args } = parseArgs({ options: { json: { type: "boolean" }, smoke: { type: "boolean" }, rounds: { type: "string" }, n: { type: "string" }, cpus: { type: "string" }, port: { type: "string" } } });
const root = path.resolve(import.meta.dirname, "..");
const scratch = path.join(root, "bench", "scratch");
mkdirSync(scratch, { recursive: true });
const rounds = Number(args.rounds ?? (args.smoke ? 1 : 7));
const n = Number(args.n ?? (args.smoke ? 50 : 4000));
const port = Number(args.port ?? 8761);

/** CPU time (ns) of every thread of the given processes: /proc/<pid>/task/<tid>/schedstat's first field. */
function cpuNs(pids) {
  let total = 0;
  for (const pid of pids) {
    let tids = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // thread gone
      }
    }
  }
  return total;
}

async function main() {
  const scriptPath = await buildWorker(scratch);
  const workerd = await startWorkerd({
    scriptPath,
    workers: [{ name: "micro", scenario: "micro", port, durableObjects: { LIMITER: { className: "LimiterDurableObject", useSQLite: true, unsafePreventEviction: true } } }],
    cpus: args.cpus ?? "1",
    compatibilityDate: /compatibility_date\s*=\s*"([^"]+)"/.exec(readFileSync(path.join(root, "wrangler.toml"), "utf8"))[1],
    bindings: {},
  });
  const base = `http://127.0.0.1:${port}`;
  const list = await (await fetch(`${base}/__micro/chains`)).json();
  const names = list.map((c) => c.name);
  const run = async (chain, count) => {
    const pids = workerd.pids();
    const c0 = cpuNs(pids);
    const res = await fetch(`${base}/__micro?chain=${encodeURIComponent(chain)}&n=${count}`);
    const c1 = cpuNs(pids);
    if (!res.ok) throw new Error(`micro ${chain}: ${res.status} ${await res.text()}`);
    return (c1 - c0) / 1000 / count;
  };
  // Warm-up: every chain, so the JIT has settled before anything is measured.
  for (const name of names) await run(name, args.smoke ? 20 : 3000);
  const samples = new Map(names.map((name) => [name, []]));
  for (let r = 0; r < rounds; r++) for (const name of names) samples.get(name).push(await run(name, n));
  return { runtime: "workerd", requestsPerBatch: n, rounds, chains: list.map(({ name, onTopOf }) => ({ name, ...(onTopOf ? { onTopOf } : {}), cpuUs: samples.get(name) })) };
}

try {
  const result = await main();
  if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    console.log(`micro-benchmark in workerd (${result.rounds}×${result.requestsPerBatch} requests per chain; CPU µs/request, median and min–max)`);
    for (const c of workerdMicroRows(result)) console.log(c.name.padEnd(14) + c.cpuUs.toFixed(1).padStart(8) + `  net ${c.netCpuUs.toFixed(1).padStart(7)}  step ${c.stepUs === undefined ? "      –" : c.stepUs.toFixed(1).padStart(6)}  (${c.cpuRange[0].toFixed(1)}–${c.cpuRange[1].toFixed(1)})`);
  }
} finally {
  await stopAll();
}
