import { readdir, readFile, mkdir } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { connect, type AddressInfo } from "node:net";
import path from "node:path";
import { build } from "esbuild";
import { Miniflare } from "miniflare";

/** Bindings of the raw-socket gateway: the same values vitest.config.ts gives the pool's worker. */
export const RAW_GATEWAY_ADMIN_TOKEN = "test-admin-token-0123456789abcdef";
export const RAW_GATEWAY_ORIGIN_TOKEN = "origin-secret-value-7f3a9c";

const defaultRoot = path.resolve(import.meta.dirname, "../..");

/**
 * The test gateway (test/fixtures/worker.ts) in its own workerd, listening on real ports, so
 * tests can send request lines byte for byte. `SELF.fetch` cannot: the WHATWG URL parser in
 * front of it resolves `%2e%2e`, `\` and dot segments before the gateway sees the request.
 *
 * Two ports: `direct` is workerd's own HTTP socket straight into the worker (what the worker
 * sees is what workerd's HTTP parser made of the bytes); `entry` is Miniflare's dev entry
 * worker, which re-parses the URL like a WHATWG client would.
 */
export async function startRawGateway(originUrl: string, root = defaultRoot) {
  const outdir = path.join(root, "node_modules/.cache/portcullis-raw-gateway");
  await mkdir(outdir, { recursive: true });
  await build({
    entryPoints: [path.join(root, "test/fixtures/worker.ts")],
    bundle: true,
    format: "esm",
    platform: "neutral",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    outfile: path.join(outdir, "worker.mjs"),
    // Runtime modules (cloudflare:workers for the limiter's Durable Objects) come from workerd.
    external: ["cloudflare:*", "node:*"],
    logLevel: "error",
  });
  const mf = new Miniflare({
    modules: true,
    modulesRoot: outdir,
    scriptPath: path.join(outdir, "worker.mjs"),
    compatibilityDate: "2026-04-26",
    host: "127.0.0.1",
    port: 0,
    unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
    d1Databases: ["DB"],
    d1Persist: false,
    // The limiter Durable Objects test/fixtures/worker.ts exports (as in wrangler.toml and vitest.config.ts).
    durableObjects: {
      LIMITER: { className: "LimiterDurableObject", useSQLite: true },
      LIMITER_STALLED: "StalledLimiter",
      LIMITER_BROKEN: "BrokenLimiter",
      LIMITER_SLOW: { className: "SlowLimiter", useSQLite: true },
    },
    durableObjectsPersist: false,
    // The worker's own log lines (key refusals…) would flood the test output; drain them.
    handleRuntimeStdio: (stdout: NodeJS.ReadableStream, stderr: NodeJS.ReadableStream) => {
      stdout.resume();
      stderr.resume();
    },
    bindings: {
      ADMIN_TOKEN: RAW_GATEWAY_ADMIN_TOKEN,
      TEST_ORIGIN_URL: originUrl,
      TEST_ORIGIN_PREFIXED_URL: `${originUrl}/base/v1`,
      ECHO_ORIGIN_TOKEN: RAW_GATEWAY_ORIGIN_TOKEN,
      JWT_HS_SECRET: "hs256-test-secret-0123456789abcdef0123",
      SECRETS_KEY: "dGVzdC1zZWNyZXRzLWtleS0zMi1ieXRlcy1sb25nISE=",
      KEY_CACHE_TTL_SECONDS: "1",
      KEY_NEGATIVE_CACHE_TTL_SECONDS: "1",
      // Every test file shares this gateway and its one client address (a raw socket sends no
      // CF-Connecting-IP: bucket ip:unknown), and many send wrong admin tokens on purpose. At the
      // default 5 they would throttle each other's admin calls; the throttle's own tests run in
      // the pool (dashboard-sign-in.test.ts, admin-throttle.test.ts), with the default and an address each.
      ADMIN_SIGNIN_MAX_FAILURES: "1000",
    },
  });
  const entry = await mf.ready;
  const direct = await mf.unsafeGetDirectURL();
  // The same migrations the pool applies, statement by statement (drizzle-kit's breakpoints).
  const db = await mf.getD1Database("DB");
  const dir = path.join(root, "migrations");
  for (const file of (await readdir(dir)).filter((f) => f.endsWith(".sql")).sort()) {
    const sql = await readFile(path.join(dir, file), "utf8");
    const statements = sql.split("--> statement-breakpoint").map((s) => s.trim()).filter(Boolean);
    await db.batch(statements.map((s) => db.prepare(s)));
  }
  return { mf, entryPort: Number(entry.port), directPort: Number(direct.port) };
}

/** True once `buf` holds one whole HTTP/1.1 response (by Content-Length, chunked end, or no body). */
function responseComplete(buf: Buffer, method: string): boolean {
  const end = buf.indexOf("\r\n\r\n");
  if (end === -1) return false;
  const head = buf.subarray(0, end).toString("latin1").toLowerCase();
  const status = Number(head.split(" ")[1]);
  if (method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200)) return true;
  const body = buf.subarray(end + 4);
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) return body.includes("0\r\n\r\n") && body.subarray(body.lastIndexOf("0\r\n\r\n")).length === 5;
  const len = /\r\ncontent-length:\s*(\d+)/.exec(head);
  return len ? body.length >= Number(len[1]) : false;
}

/**
 * Writes `raw` to 127.0.0.1:port and returns the bytes of the response: until one response is
 * complete (workerd keeps connections open even after `Connection: close`), the peer closes,
 * `timeoutMs` passes, or — a client that gives up mid-download — `closeAfter` bytes arrived.
 */
export function sendRaw(port: number, raw: Buffer, timeoutMs = 5_000, closeAfter = Infinity): Promise<Buffer> {
  const method = raw.subarray(0, 8).toString("latin1").split(" ")[0] ?? "";
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, "127.0.0.1");
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(chunks));
    };
    const timer = setTimeout(done, timeoutMs);
    socket.on("data", (c) => {
      chunks.push(c);
      const got = Buffer.concat(chunks);
      if (got.length >= closeAfter || responseComplete(got, method)) done();
    });
    socket.on("end", done);
    socket.on("error", done);
    socket.write(raw);
  });
}

/**
 * An HTTP service for tests running inside workerd, which have no raw TCP client of their own:
 * `POST /send?port=N` with the raw request bytes as body answers with the raw response bytes;
 * `&closeAfter=B` closes the connection once B bytes arrived (a client aborting a download).
 * Only the ports given here may be targeted.
 */
export async function startRawDriver(allowedPorts: number[]): Promise<{ server: Server; port: number }> {
  const server = createServer(async (req, res) => {
    const port = Number(new URL(req.url ?? "/", "http://x").searchParams.get("port"));
    if (!allowedPorts.includes(port)) {
      res.writeHead(400).end("port not allowed");
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const closeAfter = Number(new URL(req.url ?? "/", "http://x").searchParams.get("closeAfter") ?? Infinity) || Infinity;
    const out = await sendRaw(port, Buffer.concat(chunks), 5_000, closeAfter);
    res.writeHead(200, { "content-type": "application/octet-stream" }).end(out);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { server, port: (server.address() as AddressInfo).port };
}
