// The servers a benchmark run starts: the origin (nginx, or Node when nginx is missing), nginx
// as a keep-alive reverse proxy, and one workerd (through Miniflare's API) running every
// benchmark worker on its own direct socket. All are stopped by `stopAll()`.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { createConnection } from "node:net";
import path from "node:path";
import { ORIGIN_BODY } from "./body.mjs";
import { pin, processTree } from "./proc.mjs";

const children = new Set();
let miniflare;
let doDir;

/** A fresh directory on a tmpfs for Durable Object storage (removed by stopAll); the OS temp dir without one. */
function doStorageDir() {
  if (!doDir) {
    const base = existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
    doDir = mkdtempSync(path.join(base, "portcullis-bench-do-"));
  }
  return doDir;
}

/** Where the Durable Objects of this run keep their storage (the report names it). */
export const durableObjectStorage = () => (doDir ? (doDir.startsWith("/dev/shm") ? "tmpfs (/dev/shm)" : `disk (${doDir})`) : undefined);

export function which(bin) {
  try {
    return execFileSync("sh", ["-c", `command -v ${bin}`], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port, timeoutMs = 15_000) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const ok = await new Promise((resolve) => {
      const s = createConnection({ host: "127.0.0.1", port }, () => {
        s.end();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** A server child process, stopped by stopAll(); `stderrText()` is what it has printed on stderr. */
export function startChild(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"], ...opts });
  let stderr = "";
  child.stderr?.on("data", (d) => (stderr += d));
  child.on("exit", () => children.delete(child));
  child.stderrText = () => stderr;
  children.add(child);
  return child;
}

/** An nginx config: one worker process, no logs, keep-alive to clients and (for the proxy) to the origin. */
function nginxConf(dir, server) {
  return `daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
${server}
}
`;
}

async function startNginx(dir, server, port, cpus) {
  mkdirSync(path.join(dir, "tmp"), { recursive: true });
  const conf = path.join(dir, "nginx.conf");
  writeFileSync(conf, nginxConf(dir, server));
  const child = startChild("nginx", ["-p", dir, "-c", conf, "-e", path.join(dir, "error.log")]);
  await waitForPort(port).catch((e) => {
    throw new Error(`${e.message}\nnginx: ${child.stderrText()}${readFileSafe(path.join(dir, "error.log"))}`);
  });
  for (const pid of processTree(child.pid)) pin(pid, cpus);
  return { pid: child.pid, pids: () => processTree(child.pid) };
}

const readFileSafe = (p) => {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return "";
  }
};

/** The origin: nginx `return 200` with the JSON body (or a Node server without nginx). */
export async function startOrigin({ port, dir, cpus, useNginx }) {
  if (useNginx) {
    const body = ORIGIN_BODY.replaceAll("\\", "\\\\").replaceAll("'", "\\'");
    const server = `  server {
    listen 127.0.0.1:${port} backlog=4096;
    default_type application/json;
    location / { return 200 '${body}'; }
  }`;
    return { kind: "nginx", ...(await startNginx(path.join(dir, "origin"), server, port, cpus)) };
  }
  const child = startChild(process.execPath, [path.join(import.meta.dirname, "origin.mjs"), String(port)]);
  await waitForPort(port);
  pin(child.pid, cpus);
  return { kind: "node", pid: child.pid, pids: () => [child.pid] };
}

/** nginx as the native reverse-proxy reference: proxy_pass with an upstream keep-alive pool. */
export async function startNginxProxy({ port, originPort, dir, cpus }) {
  const server = `  upstream origin {
    server 127.0.0.1:${originPort};
    keepalive 128;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering on;
    }
  }`;
  return startNginx(path.join(dir, "proxy"), server, port, cpus);
}

/**
 * The Upstash backend of the rate-limit scenarios: a Redis of our own (no persistence, nothing
 * shared with other users of the machine's Redis) and the Upstash-REST bridge over it
 * (scripts/upstash-bridge.mjs), both pinned to the server core — they stand in for a remote
 * service, as the Durable Objects Miniflare runs inside workerd do.
 */
export async function startUpstash({ redisPort, bridgePort, dir, cpus, token }) {
  const redisDir = path.join(dir, "redis");
  mkdirSync(redisDir, { recursive: true });
  const redis = startChild("redis-server", ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", redisDir, "--loglevel", "warning"]);
  await waitForPort(redisPort).catch((e) => {
    throw new Error(`${e.message}\nredis-server: ${redis.stderrText()}`);
  });
  const bridgeScript = path.resolve(import.meta.dirname, "..", "..", "scripts", "upstash-bridge.mjs");
  const bridge = startChild(process.execPath, [bridgeScript, "--port", String(bridgePort), "--redis", `redis://127.0.0.1:${redisPort}`, "--token", token]);
  await waitForPort(bridgePort).catch((e) => {
    throw new Error(`${e.message}\nbridge: ${bridge.stderrText()}`);
  });
  pin(redis.pid, cpus);
  for (const pid of processTree(bridge.pid)) pin(pid, cpus);
  return { url: `http://127.0.0.1:${bridgePort}`, pids: () => [...processTree(redis.pid), ...processTree(bridge.pid)] };
}

/**
 * One workerd (Miniflare's API, never `wrangler dev`) running each benchmark worker on its own
 * direct socket, D1 in memory (no persistence) and shared by every worker.
 */
export async function startWorkerd({ scriptPath, workers, cpus, bindings, compatibilityDate, inspectorPort, readyTimeoutMs }) {
  const { Miniflare, Log, LogLevel } = await import("miniflare");
  miniflare = new Miniflare({
    // Only bench/profile.mjs sets it: the inspector is how it takes workerd's CPU profile.
    ...(inspectorPort ? { inspectorPort } : {}),
    log: new Log(LogLevel.WARN),
    // No Request.cf lookup (offline machine); a placeholder object is fine for the gateway.
    cf: false,
    // Durable Object storage (SQLite files) on a tmpfs: Miniflare's "no persistence" still writes
    // them to a temporary directory on disk, where syncing each lease's write made every Durable
    // Object call wait on the disk (TOOLCHAIN.md); its in-memory storage
    // (unsafeEphemeralDurableObjects) does not run SQLite-backed classes.
    ...(workers.some((w) => w.durableObjects) ? { durableObjectsPersist: doStorageDir() } : {}),
    // D1 likewise: "no persistence" is SQLite files in a temporary directory on disk; a fresh
    // directory on the tmpfs keeps each run's database in memory (the audit fallback and the
    // cold scenario write and read it on every request).
    d1Persist: doStorageDir(),
    workers: workers.map((w) => ({
      name: w.name,
      modules: true,
      scriptPath: w.scriptPath ?? scriptPath,
      compatibilityDate,
      bindings: { ...bindings, ...w.bindings, BENCH_SCENARIO: w.scenario },
      d1Databases: { DB: "bench-db" },
      // Audit events go to a local Queue with no consumer: the request path's cost only.
      queueProducers: { AUDIT_QUEUE: "portcullis-audit" },
      // The rate-limit scenarios' Durable Objects, in this workerd (storage: see below).
      ...(w.durableObjects ? { durableObjects: w.durableObjects } : {}),
      unsafeDirectSockets: [{ host: "127.0.0.1", port: w.port }],
      // Miniflare otherwise routes every subrequest through a JavaScript worker of its own in the
      // same workerd (strip-cf-connecting-ip: copies the headers, deletes CF-Connecting-IP, sets
      // CF-Worker, fetches again). Production has no such hop, and it charged every header a
      // worker sends to its origin ~20 k instructions (bench/README.md, "The subrequest hop").
      // The gateway drops cf-* headers from what it forwards itself.
      stripCfConnectingIp: false,
    })),
  });
  await miniflare.ready;
  // readyTimeoutMs: bench/instructions.mjs runs workerd under valgrind, which starts far slower.
  for (const w of workers) await waitForPort(w.port, readyTimeoutMs);
  // workerd is Miniflare's child process; find it by its parent (us), never by name.
  // Snapshot now, before any load generator exists: our descendants minus the other servers.
  const others = new Set([...children].flatMap((c) => processTree(c.pid)));
  const workerdPids = processTree(process.pid).filter((p) => p !== process.pid && !others.has(p));
  for (const pid of workerdPids) pin(pid, cpus);
  return { miniflare, pids: () => workerdPids };
}

export async function stopAll() {
  if (miniflare) await miniflare.dispose().catch(() => {});
  miniflare = undefined;
  for (const child of children) {
    try {
      child.kill("SIGTERM");
    } catch {
      // gone
    }
  }
  const end = Date.now() + 3000;
  while (children.size && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  for (const child of children) child.kill("SIGKILL");
  if (doDir) rmSync(doDir, { recursive: true, force: true });
  doDir = undefined;
}
