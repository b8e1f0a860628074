#!/usr/bin/env node
// Load generator child process: `node loadgen.mjs '<json spec>'` prints one JSON result line.
// The harness runs it pinned to the load-generator core (taskset), apart from the servers.
//
// Modes:
//   closed  — N connections, each sends its next request as soon as the last one answered
//             (fallback for when wrk is not installed).
//   fixed   — a fixed arrival rate: request i is *scheduled* at start + i/rate and its latency is
//             measured from that scheduled time, so a stalled server is charged for every request
//             it delayed (no coordinated omission). The first `warmupMs` of the schedule is sent
//             but not recorded. Requests queue in the keep-alive pool when
//             every connection is busy; the queueing is part of the latency, as it would be.
//   seq     — one connection, strictly one request after the other: the unloaded cost of a hop.
//
// Every response is read fully and its status checked: a non-200 answer is an error, never a
// fast success.
import http from "node:http";
import { readFileSync } from "node:fs";

const spec = JSON.parse(process.argv[2]);
const url = new URL(spec.url);
const keys = spec.keysFile ? readFileSync(spec.keysFile, "utf8").split("\n").filter(Boolean) : [];
let keyIndex = 0;

const agent = new http.Agent({ keepAlive: true, maxSockets: spec.connections ?? 1, maxFreeSockets: spec.connections ?? 1, scheduling: "fifo" });

function requestOnce() {
  return new Promise((resolve) => {
    const headers = {};
    if (keys.length) headers.authorization = `Bearer ${keys[keyIndex++ % keys.length]}`;
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname + url.search, method: "GET", headers, agent }, (res) => {
      res.on("data", () => {});
      res.on("end", () => resolve(res.statusCode === 200 ? null : `status ${res.statusCode}`));
      res.on("error", (e) => resolve(String(e)));
    });
    req.on("error", (e) => resolve(String(e.code ?? e)));
    req.end();
  });
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

function summarize(latencies, count) {
  const a = latencies.subarray(0, count).sort();
  const q = (p) => (count ? a[Math.min(count - 1, Math.ceil(p * count) - 1)] : NaN);
  return { p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: count ? a[count - 1] : NaN };
}

async function closed() {
  const end = nowMs() + spec.durationMs;
  // maxRequests = keys.length: the sweep that presents every key once (cache warm-up).
  const max = spec.maxRequests ?? Infinity;
  let started = 0;
  let done = 0;
  const errors = [];
  const t0 = nowMs();
  await Promise.all(
    Array.from({ length: spec.connections }, async () => {
      while (nowMs() < end && started++ < max) {
        const err = await requestOnce();
        if (err) errors.push(err);
        done++;
      }
    }),
  );
  const seconds = (nowMs() - t0) / 1000;
  return { requests: done, errors: errors.length, firstError: errors[0], seconds, rps: done / seconds };
}

async function sequential() {
  const max = spec.maxRequests ?? Infinity;
  const lat = new Float64Array(Math.min(max, 200_000));
  const end = nowMs() + spec.durationMs;
  let n = 0;
  const errors = [];
  while (nowMs() < end && n < lat.length) {
    const t = nowMs();
    const err = await requestOnce();
    lat[n++] = nowMs() - t;
    if (err) errors.push(err);
  }
  return { requests: n, errors: errors.length, firstError: errors[0], latencyMs: summarize(lat, n) };
}

function fixed() {
  return new Promise((resolve) => {
    // A warm-up at the same rate comes first and is not recorded: the generator's own start (a
    // fresh Node process: JIT, the keep-alive pool opening its sockets) delayed requests by up to
    // ~40 ms in its first second, even against the direct origin, which set direct's p99.
    const warm = Math.round((spec.rate * (spec.warmupMs ?? 0)) / 1000);
    const measured = Math.round((spec.rate * spec.durationMs) / 1000);
    const total = warm + measured;
    const lat = new Float64Array(measured);
    const errors = [];
    let sent = 0;
    let finished = 0;
    const start = nowMs() + 20;
    const scheduledAt = (i) => start + (i * 1000) / spec.rate;
    const tick = () => {
      const now = nowMs();
      // Send everything that is due; a late tick sends a burst, each charged from its own schedule.
      while (sent < total && scheduledAt(sent) <= now) {
        const i = sent++;
        requestOnce().then((err) => {
          if (settled || i < warm) return;
          lat[i - warm] = nowMs() - scheduledAt(i);
          done[i - warm] = 1;
          if (err) errors.push(err);
          if (++finished === measured) finish();
        });
      }
      if (sent < total) setImmediate(tick);
    };
    let settled = false;
    const done = new Uint8Array(measured);
    // A server that cannot keep up with the rate would take ever longer to drain its backlog:
    // stop waiting 2 s after the last scheduled send and charge every unanswered request the
    // time it has waited so far (a lower bound), reporting how many there were.
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      const end = nowMs();
      let unanswered = 0;
      for (let i = 0; i < measured; i++) {
        if (!done[i]) {
          unanswered++;
          lat[i] = end - scheduledAt(warm + i);
        }
      }
      const seconds = (end - scheduledAt(warm)) / 1000;
      resolve({ requests: measured - unanswered, unanswered, errors: errors.length, firstError: errors[0], targetRps: spec.rate, achievedRps: (measured - unanswered) / seconds, warmupRequests: warm, latencyMs: summarize(lat, measured) });
    };
    const deadline = setTimeout(finish, (spec.warmupMs ?? 0) + spec.durationMs + 2020);
    setTimeout(tick, 20);
  });
}

const run = { closed, seq: sequential, fixed }[spec.mode];
const result = await run();
process.stdout.write(`${JSON.stringify(result)}\n`);
agent.destroy();
// Unanswered requests of an overloaded fixed-rate run may still hold sockets: exit now.
process.exit(0);
