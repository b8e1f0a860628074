#!/usr/bin/env node
// Enumeration-by-timing check for key-auth: do 401s for keys that are *almost* a real key take
// measurably different time from 401s for keys that are nothing like one?
//
//   node bench/key-timing.mjs [samplesPerGroup=1500]
//
// Runs the test gateway (test/fixtures/worker.ts) in workerd through Miniflare's API, talking
// to workerd's own socket (no dev proxy), with in-memory D1. Two comparisons, each with fresh
// keys per sample (so neither the positive nor the negative cache is hit) and the two groups
// interleaved in random order (so drift hits both alike):
//
//   A. well-formed keys (valid checksum, so they reach the D1 lookup):
//      near-miss = a real key with one random character changed (checksum recomputed)
//      far-miss  = a fresh random key
//   B. keys refused by the checksum alone (no I/O):
//      near-miss = a real key with its last character changed
//      far-miss  = random text of the same length
//
// Statistics: medians and percentiles, a two-sided Mann-Whitney U test (normal approximation
// with tie correction) and the two-sample Kolmogorov-Smirnov statistic with its asymptotic
// p-value. "No measurable difference" = p ≥ 0.01 on both. Results go to bench/results/.
import { execSync } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";

const root = path.resolve(import.meta.dirname, "..");
const N = Number(process.argv[2] ?? 1500);
const WARMUP = 200;

// Reuse the test harness (TypeScript) by bundling it for node once.
const tmp = path.join(root, "node_modules/.cache/portcullis-bench");
await mkdir(tmp, { recursive: true });
const harness = path.join(tmp, "harness.mjs");
await writeFile(
  path.join(tmp, "entry.ts"),
  `export { startRawGateway, RAW_GATEWAY_ADMIN_TOKEN } from ${JSON.stringify(path.join(root, "test/node/raw-gateway.ts"))};
   export { startRecordingOrigin } from ${JSON.stringify(path.join(root, "test/node/origin.ts"))};
   export { generateApiKey } from ${JSON.stringify(path.join(root, "worker/lib/api-key.ts"))};
   export { crc32 } from ${JSON.stringify(path.join(root, "worker/lib/crc32.ts"))};
   export { encodeBase62 } from ${JSON.stringify(path.join(root, "worker/lib/base62.ts"))};`,
);
await build({ entryPoints: [path.join(tmp, "entry.ts")], bundle: true, platform: "node", format: "esm", packages: "external", outfile: harness, logLevel: "error" });
const { startRawGateway, RAW_GATEWAY_ADMIN_TOKEN, startRecordingOrigin, generateApiKey, crc32, encodeBase62 } = await import(pathToFileURL(harness).href);

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const randChar = (not) => {
  for (;;) {
    const c = ALPHABET[Math.floor(Math.random() * 62)];
    if (c !== not) return c;
  }
};
const withChecksum = (body) => body + encodeBase62(crc32(body), 6);

const origin = await startRecordingOrigin();
const { mf, directPort } = await startRawGateway(`http://127.0.0.1:${origin.port}`, root);
const base = `http://127.0.0.1:${directPort}`;
const adminPost = async (p, body) => {
  const res = await fetch(`${base}/admin/v1${p}`, { method: "POST", headers: { authorization: `Bearer ${RAW_GATEWAY_ADMIN_TOKEN}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  if (res.status !== 201) throw new Error(`seed ${p}: ${res.status} ${await res.text()}`);
  return res.json();
};
const role = await adminPost("/roles", { name: "bench-role", permissions: ["echo:read"] });
const user = await adminPost("/users", { name: "bench-user", roles: [role.name] });
const real = (await adminPost(`/users/${user.id}/keys`, {})).key;
// A few hundred other users' keys in D1, so the lookup is not against a near-empty table.
for (let i = 0; i < 200; i++) await adminPost(`/users/${user.id}/keys`, {});

async function timeOne(key) {
  const t0 = process.hrtime.bigint();
  const res = await fetch(`${base}/echo/bench`, { headers: { authorization: `Bearer ${key}` } });
  await res.arrayBuffer();
  const ns = Number(process.hrtime.bigint() - t0);
  if (res.status !== 401) throw new Error(`expected 401, got ${res.status}`);
  return ns / 1000;
}

const generators = {
  A: {
    near: () => {
      const body = real.slice(0, -6);
      const i = 4 + Math.floor(Math.random() * 24);
      return withChecksum(body.slice(0, i) + randChar(body[i]) + body.slice(i + 1));
    },
    far: () => generateApiKey().key,
  },
  B: {
    near: () => real.slice(0, -1) + randChar(real.at(-1)),
    far: () => Array.from({ length: real.length }, () => randChar()).join(""),
  },
};

function quantile(sorted, q) {
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i);
  return sorted[lo] + (sorted[Math.ceil(i)] - sorted[lo]) * (i - lo);
}
// Standard normal CDF (Abramowitz-Stegun 7.1.26 erf).
function phi(z) {
  const t = 1 / (1 + 0.3275911 * (Math.abs(z) / Math.SQRT2));
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-(z * z) / 2);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}
function mannWhitney(a, b) {
  const all = [...a.map((v) => [v, 0]), ...b.map((v) => [v, 1])].sort((x, y) => x[0] - y[0]);
  const ranks = new Array(all.length);
  let tieTerm = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j + 1 < all.length && all[j + 1][0] === all[i][0]) j++;
    const r = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[k] = r;
    const t = j - i + 1;
    tieTerm += t ** 3 - t;
    i = j + 1;
  }
  const n1 = a.length, n2 = b.length, n = n1 + n2;
  const r1 = all.reduce((s, [, g], i) => (g === 0 ? s + ranks[i] : s), 0);
  const u = r1 - (n1 * (n1 + 1)) / 2;
  const sigma = Math.sqrt(((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1))));
  const z = (u - (n1 * n2) / 2) / sigma;
  return { U: u, z, p: 2 * (1 - phi(Math.abs(z))), commonLanguageEffect: u / (n1 * n2) };
}
function kolmogorovSmirnov(a, b) {
  const x = [...a].sort((p, q) => p - q), y = [...b].sort((p, q) => p - q);
  let i = 0, j = 0, d = 0;
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i], y[j]);
    while (i < x.length && x[i] <= v) i++;
    while (j < y.length && y[j] <= v) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  const ne = (x.length * y.length) / (x.length + y.length);
  const lambda = (Math.sqrt(ne) + 0.12 + 0.11 / Math.sqrt(ne)) * d;
  let p = 0;
  for (let k = 1; k <= 100; k++) p += 2 * (-1) ** (k - 1) * Math.exp(-2 * k * k * lambda * lambda);
  return { D: d, p: Math.min(1, Math.max(0, p)) };
}
const summary = (xs) => {
  const s = [...xs].sort((p, q) => p - q);
  return { n: s.length, p10: +quantile(s, 0.1).toFixed(1), median: +quantile(s, 0.5).toFixed(1), p90: +quantile(s, 0.9).toFixed(1) };
};

const results = {};
for (const [name, gen] of Object.entries(generators)) {
  for (let i = 0; i < WARMUP; i++) await timeOne(Math.random() < 0.5 ? gen.near() : gen.far());
  const order = [...Array(N).fill("near"), ...Array(N).fill("far")].sort(() => Math.random() - 0.5);
  const samples = { near: [], far: [] };
  for (const g of order) samples[g].push(await timeOne(gen[g]()));
  const mw = mannWhitney(samples.near, samples.far);
  const ks = kolmogorovSmirnov(samples.near, samples.far);
  results[name] = {
    near: summary(samples.near),
    far: summary(samples.far),
    medianDiffUs: +(quantile([...samples.near].sort((p, q) => p - q), 0.5) - quantile([...samples.far].sort((p, q) => p - q), 0.5)).toFixed(1),
    mannWhitney: { z: +mw.z.toFixed(3), p: +mw.p.toFixed(4), commonLanguageEffect: +mw.commonLanguageEffect.toFixed(3) },
    kolmogorovSmirnov: { D: +ks.D.toFixed(4), p: +ks.p.toFixed(4) },
    verdict: mw.p >= 0.01 && ks.p >= 0.01 ? "no measurable difference (p >= 0.01)" : "DIFFERENCE DETECTED (p < 0.01)",
  };
  console.log(name, JSON.stringify(results[name]));
}

let cpu = "unknown";
try {
  cpu = execSync("grep -m1 'model name' /proc/cpuinfo", { encoding: "utf8" }).split(":")[1].trim();
} catch {}
const record = {
  date: new Date().toISOString(),
  machine: { cpu, cores: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), os: `${os.type()} ${os.release()}`, node: process.version },
  setup: "test gateway in workerd via Miniflare API, workerd's own socket, in-memory D1, 201 keys in D1, node fetch client (keep-alive), sequential requests",
  samplesPerGroup: N,
  results,
};
const out = path.join(root, "bench/results", `key-timing-${record.date.slice(0, 10)}.json`);
await writeFile(out, JSON.stringify(record, null, 2) + "\n");
console.log(`wrote ${path.relative(root, out)}`);
await mf.dispose();
await new Promise((r) => origin.server.close(r));
await rm(tmp, { recursive: true, force: true });
