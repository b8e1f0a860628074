#!/usr/bin/env node --expose-gc
// Per-plugin micro-benchmark and 100k-request soak: the gateway's own createApp, bundled for
// Node, called through app.fetch in a loop with the origin stubbed (global fetch answers at once)
// and the key cache warm (no D1). Measures CPU µs and heap bytes allocated per request for a
// bare Hono pass-through and for the gateway chain growing one plugin at a time.
//
//   node --expose-gc bench/micro.mjs              table on stdout
//   node --expose-gc bench/micro.mjs --json       one JSON line (what `npm run bench` embeds)
//   node --expose-gc bench/micro.mjs --tree bench/scratch/tree-abc123   the same for another tree
//   node --expose-gc bench/micro.mjs --profile +authorize
//                                                 CPU profile of one chain → bench/scratch/*.cpuprofile
//                                                 and its top functions by self time
//   node --expose-gc bench/micro.mjs --heap-profile core
//                                                 allocation sites of one chain (V8's sampling heap
//                                                 profiler, objects later collected included), bytes/request
//
// Numbers are Node's V8 with undici's Request/Response/Headers, whose costs differ from
// workerd's C++ implementations: use them to compare chains and find hot spots; the workerd
// figures in `npm run bench` are the ones the targets are judged on.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import v8 from "node:v8";
import { ORIGIN_BODY } from "./lib/body.mjs";
import { importForNode } from "./lib/build.mjs";
import { median } from "./lib/stats.mjs";
import { stubD1 as createStubD1 } from "./lib/stub-d1.mjs";

const { values: args } = parseArgs({ options: { json: { type: "boolean" }, smoke: { type: "boolean" }, profile: { type: "string" }, "heap-profile": { type: "string" }, tree: { type: "string" }, "no-soak": { type: "boolean" } } });
if (typeof globalThis.gc !== "function") {
  console.error("run with node --expose-gc");
  process.exit(2);
}
const scratch = path.resolve(import.meta.dirname, "scratch");
// --tree DIR: measure another source tree (an older revision, for before/after).
const apps = await importForNode(scratch, "bench/worker/micro-apps.ts", args.tree ? `micro-apps-${path.basename(args.tree)}` : "micro-apps", args.tree ?? undefined);

// ── stubs: the origin and D1 ──────────────────────────────────────────────────
const originHeaders = { "content-type": "application/json", "content-length": String(Buffer.byteLength(ORIGIN_BODY)) };
globalThis.fetch = async () => new Response(ORIGIN_BODY, { status: 200, headers: originHeaders });

let d1Writes = 0;
const stubD1 = createStubD1(() => d1Writes++);
// Node's AbortSignal.timeout keeps a timer (and the signal) alive for the whole timeout, 30 s
// here, so 100k fast requests hold 100k timers: a leak of the stub world, not of the gateway
// (workerd ties the timer to the request, which ends). A plain signal keeps the soak honest;
// its CPU is Node's anyway.
// (One shared signal: creating an AbortController is itself dear in Node.)
const neverAborts = new AbortController().signal;
AbortSignal.timeout = () => neverAborts;

// The audit plugin's Queue: accepts batches, like a producer binding that never blocks.
let auditBatches = 0;
const auditQueue = { send: async () => void auditBatches++, sendBatch: async () => void auditBatches++ };

// The rate-limit step's Durable Object namespace: the real class, in-process (see micro-apps.ts).
const env = { AUDIT_QUEUE: auditQueue, LIMITER: apps.memoryLimiterNamespace(), DB: stubD1, ADMIN_TOKEN: "micro-admin-token-0123456789", ORIGIN_TOKEN: "micro-origin-secret", KEY_CACHE_TTL_SECONDS: "60", KEY_NEGATIVE_CACHE_TTL_SECONDS: "2" };
const ctx = { waitUntil: (p) => void Promise.resolve(p).catch(() => {}), passThroughOnException() {}, props: {} };

const keys = await apps.warmKeys(args.smoke ? 50 : 1000, 3_600_000);
let k = 0;
const newRequest = () => new Request("http://gw.bench/api/orders/42", { headers: { authorization: `Bearer ${keys[k++ % keys.length]}`, accept: "application/json", "user-agent": "bench" } });

/** The driver alone (request in, stubbed response consumed): subtracted to get the app's own cost. */
const driver = { name: "driver", app: { fetch: async () => globalThis.fetch() } };
// "floor" is missing from an older tree built for --before.
const chains = [driver, { name: "bare", app: apps.bareApp() }, ...(apps.floorApp ? [{ name: "floor", app: apps.floorApp() }] : []), ...apps.gatewayApps()];

// The stubbed origin answers at once, so a loop of requests never leaves the microtask queue and
// timers never fire — but the audit plugin flushes a batch from a timer (flushIntervalMs), and
// in workerd every request is its own event. Turn the event loop every 500 requests, and wait
// out the flush interval before measuring the heap, or the soak measures unfired timers.
const turn = () => new Promise((r) => setImmediate(r));
const settle = () => new Promise((r) => setTimeout(r, 1_100));

async function one(app) {
  const res = await app.fetch(newRequest(), env, ctx);
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
}

/** CPU µs and heap bytes allocated per request over `n` requests (GCs during the loop are accounted for). */
async function batch(app, n) {
  globalThis.gc();
  const prof = new v8.GCProfiler();
  prof.start();
  const used0 = v8.getHeapStatistics().used_heap_size;
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    await one(app);
    if (i % 500 === 499) await turn();
  }
  const cpu = process.cpuUsage(cpu0);
  const used1 = v8.getHeapStatistics().used_heap_size;
  const { statistics } = prof.stop();
  const freed = statistics.reduce((s, g) => s + (g.beforeGC.heapStatistics.usedHeapSize - g.afterGC.heapStatistics.usedHeapSize), 0);
  return { cpuUs: (cpu.user + cpu.system) / n, bytes: (used1 - used0 + freed) / n };
}

async function profile(name) {
  const chain = chains.find((c) => c.name === name);
  if (!chain) throw new Error(`no chain "${name}"; chains: ${chains.map((c) => c.name).join(", ")}`);
  for (let i = 0; i < 5000; i++) await one(chain.app);
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 50 });
  await session.post("Profiler.start");
  for (let i = 0; i < 100_000; i++) await one(chain.app);
  const { profile: p } = await session.post("Profiler.stop");
  const file = path.join(scratch, `micro-${name.replace(/\W/g, "")}.cpuprofile`);
  writeFileSync(file, JSON.stringify(p));
  const self = new Map();
  const dt = new Map();
  p.samples.forEach((id, i) => dt.set(id, (dt.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  for (const node of p.nodes) {
    const f = node.callFrame;
    const label = `${f.functionName || "(anonymous)"} ${f.url ? path.basename(f.url) : ""}:${f.lineNumber + 1}`;
    self.set(label, (self.get(label) ?? 0) + (dt.get(node.id) ?? 0));
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  console.log(`profile of "${name}" → ${file}\ntop self time:`);
  for (const [label, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${label}`);
}

/** Where a chain's bytes are allocated: V8's sampling heap profiler, keeping the samples of objects
 *  that GC later freed (most of a request's garbage), totalled per allocating function. */
async function heapProfile(name) {
  const chain = chains.find((c) => c.name === name);
  if (!chain) throw new Error(`no chain "${name}"; chains: ${chains.map((c) => c.name).join(", ")}`);
  for (let i = 0; i < 5000; i++) await one(chain.app);
  const n = 20_000;
  const session = new Session();
  session.connect();
  await session.post("HeapProfiler.enable");
  await session.post("HeapProfiler.startSampling", { samplingInterval: 64, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  for (let i = 0; i < n; i++) {
    await one(chain.app);
    if (i % 500 === 499) await turn();
  }
  const { profile: p } = await session.post("HeapProfiler.stopSampling");
  const file = path.join(scratch, `micro-${name.replace(/\W/g, "")}.heapprofile`);
  writeFileSync(file, JSON.stringify(p));
  const self = new Map();
  const walk = (node, parent) => {
    const f = node.callFrame;
    const label = `${f.functionName || "(anonymous)"} ${f.url ? path.basename(f.url) : ""}:${f.lineNumber + 1}${parent ? ` ← ${parent}` : ""}`;
    const bytes = node.selfSize;
    if (bytes) self.set(label, (self.get(label) ?? 0) + bytes);
    const here = `${f.functionName || "(anonymous)"}:${f.lineNumber + 1}`;
    for (const c of node.children) walk(c, here);
  };
  walk(p.head, "");
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  console.log(`heap profile of "${name}" → ${file}\n${Math.round(total / n)} sampled bytes/request (the driver's included); top allocating sites:`);
  for (const [label, b] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${Math.round(b / n).toString().padStart(6)} B  ${label}`);
}

async function main() {
  if (args.profile) return profile(args.profile);
  if (args["heap-profile"]) return heapProfile(args["heap-profile"]);
  const n = args.smoke ? 100 : 3000;
  const rounds = args.smoke ? 1 : 5;
  for (const c of chains) for (let i = 0; i < (args.smoke ? 50 : 5000); i++) await one(c.app);
  const samples = new Map(chains.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) for (const c of chains) samples.get(c.name).push(await batch(c.app, n));
  const rows = chains.map((c) => {
    const s = samples.get(c.name);
    return { name: c.name, ...(c.onTopOf ? { onTopOf: c.onTopOf } : {}), cpuUs: median(s.map((x) => x.cpuUs)), bytes: median(s.map((x) => x.bytes)), cpuRange: [Math.min(...s.map((x) => x.cpuUs)), Math.max(...s.map((x) => x.cpuUs))] };
  });
  const drv = rows[0];
  for (const r of rows) {
    r.netCpuUs = r.cpuUs - drv.cpuUs;
    r.netBytes = r.bytes - drv.bytes;
  }

  // Soak: 100k requests through the full default chain; heap after a full GC every 10k.
  // (Chains "on top of" it — further plugins — come after it and are not the default pipeline.)
  const full = chains.filter((c) => !c.onTopOf).pop();
  const total = args.smoke ? 1_000 : args["no-soak"] ? 0 : 100_000;
  const every = total / 10;
  const heap = [];
  await settle();
  globalThis.gc();
  heap.push({ requests: 0, heapUsed: process.memoryUsage().heapUsed });
  for (let i = 1; total && i <= total; i++) {
    await one(full.app);
    if (i % 500 === 0) await turn();
    if (i % every === 0) {
      await settle();
      globalThis.gc();
      globalThis.gc();
      heap.push({ requests: i, heapUsed: process.memoryUsage().heapUsed });
    }
  }
  // Least-squares slope over the samples after the first 10% (by then every key has been seen once).
  const pts = total ? heap.slice(1) : heap;
  const mx = pts.reduce((s, p) => s + p.requests, 0) / pts.length;
  const my = pts.reduce((s, p) => s + p.heapUsed, 0) / pts.length;
  const slope = pts.reduce((s, p) => s + (p.requests - mx) * (p.heapUsed - my), 0) / pts.reduce((s, p) => s + (p.requests - mx) ** 2, 0);
  const soak = { chain: full.name, requests: total, heap, bytesPerRequestSlope: slope, growthBytes: pts[pts.length - 1].heapUsed - pts[0].heapUsed };

  const result = { node: process.version, requestsPerBatch: n, rounds, rows, soak, d1Writes, auditBatches };
  if (args.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  console.log(`micro-benchmark (Node ${process.version}, ${rounds}×${n} requests per chain, medians; net = minus the driver)`);
  console.log("chain".padEnd(26) + "CPU µs/req".padStart(12) + "net µs".padStart(10) + "bytes/req".padStart(12) + "net bytes".padStart(12));
  for (const r of rows) console.log((r.onTopOf ? `${r.name} (on ${r.onTopOf})` : r.name).padEnd(26) + r.cpuUs.toFixed(1).padStart(12) + r.netCpuUs.toFixed(1).padStart(10) + Math.round(r.bytes).toString().padStart(12) + Math.round(r.netBytes).toString().padStart(12));
  console.log(`soak: ${total} requests on ${full.name}; heap after GC: ${heap.map((h) => (h.heapUsed / 2 ** 20).toFixed(2)).join(" → ")} MiB; slope ${slope.toFixed(3)} B/req`);
}

await main();
