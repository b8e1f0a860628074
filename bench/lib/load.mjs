// Runs one load against one port, pinned to the load-generator core: wrk for closed-loop
// saturation when installed (C, cheap per request), else the Node generator (lib/loadgen.mjs),
// which also does the fixed-rate and sequential modes.
import { spawn } from "node:child_process";
import path from "node:path";
import { which } from "./servers.mjs";

const hasTaskset = Boolean(which("taskset"));
export const hasWrk = Boolean(which("wrk"));

function run(cmd, args, env) {
  const [bin, argv] = hasTaskset && env.BENCH_LOAD_CPUS ? ["taskset", ["-c", env.BENCH_LOAD_CPUS, cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) => {
    const child = spawn(bin, argv, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    // "close", not "exit": by then the child is reaped, so its CPU is in our cutime.
    child.on("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${err || out}`))));
  });
}

/** Closed loop with wrk: `connections` connections for `durationMs`; non-200 answers are counted. */
export async function wrkClosed({ url, connections, durationMs, keysFile, cpus }) {
  const seconds = Math.max(1, Math.round(durationMs / 1000));
  const out = await run("wrk", ["-t1", `-c${connections}`, `-d${seconds}s`, "--timeout", "10s", "-s", path.join(import.meta.dirname, "wrk-keys.lua"), url], {
    WRK_KEYS: keysFile ?? "",
    BENCH_LOAD_CPUS: cpus,
  });
  const line = out.split("\n").find((l) => l.startsWith("WRK_JSON "));
  if (!line) throw new Error(`wrk printed no summary:\n${out}`);
  const r = JSON.parse(line.slice(9));
  const errors = r.non200 + r.connect + r.read + r.write + r.timeout;
  return { requests: r.requests, errors, firstError: errors ? `non200=${r.non200} connect=${r.connect} read=${r.read} write=${r.write} timeout=${r.timeout}` : undefined, seconds: r.durationUs / 1e6, rps: r.requests / (r.durationUs / 1e6), tool: "wrk" };
}

/** The Node generator; see lib/loadgen.mjs for the modes. */
export async function nodeLoad(spec, cpus) {
  const out = await run(process.execPath, [path.join(import.meta.dirname, "loadgen.mjs"), JSON.stringify(spec)], { BENCH_LOAD_CPUS: cpus });
  return { ...JSON.parse(out.trim().split("\n").pop()), tool: "node" };
}
