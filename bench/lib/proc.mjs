// CPU accounting from /proc: the CPU time of the server processes (µs per request) and how busy
// the rest of the machine was while a round ran (foreign load), so disturbed rounds are refused.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import os from "node:os";

const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();
const TICK_US = 1e6 / CLK_TCK;

/**
 * utime+stime of one process (all its threads), in µs; 0 when it is gone. With `reaped`, also
 * the time of its children that have exited and been waited for (the load generators).
 */
export function processCpuUs(pid, reaped = false) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const own = Number(f[11]) + Number(f[12]);
    return (reaped ? own + Number(f[13]) + Number(f[14]) : own) * TICK_US;
  } catch {
    return 0;
  }
}

/** pid → ppid for every process. */
function parentMap() {
  const map = new Map();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      map.set(Number(name), Number(f[1]));
    } catch {
      // exited meanwhile
    }
  }
  return map;
}

/** A process and all its descendants. */
export function processTree(rootPid) {
  const parents = parentMap();
  const tree = new Set([rootPid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (!tree.has(pid) && tree.has(ppid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  return [...tree];
}

export const treeCpuUs = (pids) => pids.reduce((s, p) => s + processCpuUs(p), 0);

/** Machine-wide busy and total CPU time (all cores) from /proc/stat, in µs. steal counts as busy (not ours). */
export function machineCpuUs() {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busy: busy * TICK_US, total: (busy + idle + iowait) * TICK_US, steal: steal * TICK_US };
}

/**
 * Samples everything a round needs before it starts; `end()` gives the server CPU used and the
 * foreign load: busy CPU not spent by our processes, as a fraction of the machine's capacity.
 */
export function startCpuWindow(serverPids, otherOwnPids = []) {
  const m0 = machineCpuUs();
  const s0 = treeCpuUs(serverPids);
  // Ours: the harness, its reaped children (load generators, after they exit) and the other
  // servers (e.g. the origin) that run during the round.
  const own = () => processCpuUs(process.pid, true) + treeCpuUs(otherOwnPids);
  const o0 = own();
  const t0 = process.hrtime.bigint();
  return {
    /** Call after the load generator has exited. */
    end() {
      const m1 = machineCpuUs();
      const serverUs = treeCpuUs(serverPids) - s0;
      const ownUs = own() - o0;
      const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
      const capacity = m1.total - m0.total || wallUs * os.cpus().length;
      const foreign = Math.max(0, m1.busy - m0.busy - serverUs - ownUs) / capacity;
      return { serverUs, wallUs, foreign, steal: (m1.steal - m0.steal) / capacity };
    },
  };
}

/** Pins a process and all its threads to a CPU list (e.g. "1"); false when taskset is missing. */
export function pin(pid, cpus) {
  try {
    execFileSync("taskset", ["-a", "-cp", cpus, String(pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export const ncpu = os.cpus().length;
