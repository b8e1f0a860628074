#!/usr/bin/env node
// An Upstash-REST-compatible HTTP bridge over a real Redis, for tests and local development of
// the Upstash limiter backend (there is no Upstash emulator on npm).
//
//   node scripts/upstash-bridge.mjs [--port 8901] [--host 127.0.0.1] [--redis redis://127.0.0.1:6379] [--token dev-upstash-token]
//   then: UPSTASH_REDIS_REST_URL=http://127.0.0.1:8901 UPSTASH_REDIS_REST_TOKEN=dev-upstash-token
//
// What it speaks (what @upstash/redis sends):
// - `POST /` with ["cmd", ...args]; `POST /pipeline` and `POST /multi-exec` with [[...], ...];
//   also the path form `POST|GET /cmd/arg1/arg2` (body, if any, is the last argument).
// - `Authorization: Bearer <token>`; replies {"result": …} or, per command in a pipeline,
//   {"result"}|{"error"}; non-2xx bodies are {"error": "…"}.
// - With `Upstash-Encoding: base64` every string in a result is base64 (except "OK"), as the
//   real service does; the client decodes them, so binary and base64-looking values survive.
// - EVAL/EVALSHA/SCRIPT LOAD: scripts starting with `#!lua flags=…` (as @upstash/ratelimit's
//   do) are rejected by Redis 7.0; the bridge blanks that line (line numbers stay the same) and
//   maps sha1(original) → rewritten script, so the client's EVALSHA of the original finds it.
//   NOSCRIPT errors pass through, so the client falls back to EVAL as against the real service.
// - Test hooks: any path under `/__stall` is accepted and never answered (a slow backend).
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import * as ioredis from "ioredis";

// Named export under Node, default export when a bundler (vitest's globalSetup) interops the CJS build.
const Redis = ioredis.Redis ?? ioredis.default?.Redis ?? ioredis.default;

const sha1 = (s) => createHash("sha1").update(s).digest("hex");

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

/** Encodes a Redis reply the way Upstash does. ioredis gives HGETALL-style replies as objects: flatten. */
function encode(v, base64) {
  if (v === null || v === undefined) return null;
  if (Buffer.isBuffer(v)) {
    const s = v.toString("utf8");
    return base64 && s !== "OK" ? v.toString("base64") : s;
  }
  if (typeof v === "string") return base64 && v !== "OK" ? Buffer.from(v, "utf8").toString("base64") : v;
  if (typeof v === "number" || typeof v === "boolean") return v;
  if (Array.isArray(v)) return v.map((x) => encode(x, base64));
  if (typeof v === "object") return Object.entries(v).flatMap(([k, x]) => [encode(k, base64), encode(x, base64)]);
  return v;
}

const stringify = (a) => (typeof a === "string" ? a : typeof a === "object" && a !== null ? JSON.stringify(a) : String(a));

/**
 * Starts the bridge. Returns its URL and a close() that also ends the Redis connection and any
 * stalled requests.
 * @param {{ port?: number, host?: string, redisUrl?: string, token: string }} opts
 */
export async function startUpstashBridge({ port = 0, host = "127.0.0.1", redisUrl = "redis://127.0.0.1:6379", token }) {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: true, lazyConnect: true });
  await redis.connect();
  /** sha1 of a script as the client sent it → the script Redis can run. */
  const rewritten = new Map();

  function prepareScript(script) {
    if (!script.startsWith("#!")) return script;
    const nl = script.indexOf("\n");
    const runnable = nl === -1 ? "" : script.slice(nl);
    rewritten.set(sha1(script), runnable);
    return runnable;
  }

  /** Rewrites script commands; returns [command, args] ready for Redis. */
  function translate(cmd) {
    const [name, ...rest] = cmd.map(stringify);
    const upper = name.toUpperCase();
    if ((upper === "EVAL" || upper === "EVAL_RO") && rest.length > 0) return [name, [prepareScript(rest[0]), ...rest.slice(1)]];
    if ((upper === "EVALSHA" || upper === "EVALSHA_RO") && rest.length > 0) {
      const known = rewritten.get(rest[0].toLowerCase());
      // Known original: run the rewritten script by its own sha (EVAL loads it if Redis forgot it).
      if (known !== undefined) return [upper === "EVALSHA" ? "EVAL" : "EVAL_RO", [known, ...rest.slice(1)]];
      return [name, rest];
    }
    if (upper === "SCRIPT" && rest[0]?.toUpperCase() === "LOAD" && rest[1] !== undefined && rest[1].startsWith("#!")) {
      return ["__script_load_rewritten", [rest[1]]];
    }
    return [name, rest];
  }

  async function run(cmd) {
    const [name, args] = translate(cmd);
    if (name === "__script_load_rewritten") {
      await redis.callBuffer("SCRIPT", "LOAD", prepareScript(args[0]));
      return sha1(args[0]);
    }
    return redis.callBuffer(name, ...args);
  }

  const stalled = new Set();
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://bridge");
    const send = (status, body) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (url.pathname.startsWith("/__stall")) {
      // Held well past any client timeout, then dropped, so stalled calls do not pile up.
      stalled.add(res);
      const timer = setTimeout(() => res.destroy(), 3_000);
      res.on("close", () => {
        clearTimeout(timer);
        stalled.delete(res);
      });
      return;
    }
    if (req.headers.authorization !== `Bearer ${token}`) return send(401, { error: "Unauthorized" });
    const base64 = String(req.headers["upstash-encoding"] ?? "").toLowerCase() === "base64";
    let body;
    try {
      const text = await readBody(req);
      body = text ? JSON.parse(text) : undefined;
    } catch {
      return send(400, { error: "ERR request body is not JSON" });
    }
    try {
      if (url.pathname === "/pipeline" || url.pathname === "/multi-exec") {
        if (!Array.isArray(body) || !body.every(Array.isArray)) return send(400, { error: "ERR expected an array of commands" });
        if (url.pathname === "/pipeline") {
          const out = [];
          for (const cmd of body) {
            try {
              out.push({ result: encode(await run(cmd), base64) });
            } catch (err) {
              out.push({ error: String(err?.message ?? err) });
            }
          }
          return send(200, out);
        }
        const multi = redis.multi();
        for (const cmd of body) {
          const [name, args] = translate(cmd);
          multi.callBuffer(name, ...args);
        }
        const results = await multi.exec();
        return send(
          200,
          (results ?? []).map(([err, r]) => (err ? { error: String(err.message ?? err) } : { result: encode(r, base64) })),
        );
      }
      let cmd;
      if (url.pathname === "/" || url.pathname === "") {
        if (!Array.isArray(body) || body.length === 0) return send(400, { error: "ERR expected [\"command\", ...args]" });
        cmd = body;
      } else {
        cmd = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
        if (body !== undefined) cmd.push(body);
      }
      return send(200, { result: encode(await run(cmd), base64) });
    } catch (err) {
      return send(400, { error: String(err?.message ?? err) });
    }
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const actualPort = server.address().port;
  return {
    port: actualPort,
    url: `http://${host}:${actualPort}`,
    async close() {
      for (const res of stalled) res.destroy();
      server.closeAllConnections?.();
      await new Promise((resolve) => server.close(() => resolve()));
      redis.disconnect();
    },
  };
}

// CLI: run as a script (not when imported by the test setup).
if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      port: { type: "string", default: "8901" },
      host: { type: "string", default: "127.0.0.1" },
      redis: { type: "string", default: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" },
      token: { type: "string", default: process.env.UPSTASH_REDIS_REST_TOKEN ?? "dev-upstash-token" },
    },
  });
  const bridge = await startUpstashBridge({ port: Number(values.port), host: values.host, redisUrl: values.redis, token: values.token });
  console.log(`Upstash bridge on ${bridge.url} → ${values.redis}`);
  console.log(`  UPSTASH_REDIS_REST_URL=${bridge.url} UPSTASH_REDIS_REST_TOKEN=${values.token}`);
  const stop = async () => {
    await bridge.close();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
