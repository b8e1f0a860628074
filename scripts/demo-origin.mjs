#!/usr/bin/env node
// A dependency-free demo origin for `npm start`: echoes every request back as JSON so you can
// see exactly what the gateway forwarded (identity headers, injected credential, body).
// Listens on 127.0.0.1 only; port from DEMO_ORIGIN_PORT (default 8788).
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import path from "node:path";

const MAX_BODY = 1024 * 1024; // echo at most 1 MiB of body; this is a demo, not a sink

/** Headers that carry credentials: echoed as a fingerprint, never as their value. */
const CREDENTIAL_HEADERS = new Set(["authorization", "proxy-authorization", "x-api-key", "cookie"]);

/**
 * A credential as the echo shows it: the scheme (`Bearer`) kept, the rest replaced by the first
 * 8 hex digits of its SHA-256. Echoing the value itself would hand the origin's secret — the one
 * thing the gateway exists to keep from clients — to whoever calls the demo route; the
 * fingerprint still proves which secret arrived: `printf %s "$DEMO_ORIGIN_TOKEN" | sha256sum | cut -c1-8`.
 * @param {string} value
 */
export function redactCredential(value) {
  const space = value.indexOf(" ");
  const scheme = space > 0 && /^[A-Za-z][A-Za-z0-9-]*$/.test(value.slice(0, space)) ? value.slice(0, space + 1) : "";
  const secret = value.slice(scheme.length);
  return `${scheme}[redacted sha256:${createHash("sha256").update(secret).digest("hex").slice(0, 8)}]`;
}

/** The request's headers for the echo, credentials redacted (node gives repeated ones as arrays). */
function echoHeaders(headers) {
  const out = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name] = CREDENTIAL_HEADERS.has(name) ? (Array.isArray(value) ? value.map(redactCredential) : redactCredential(value)) : value;
  }
  return out;
}

/**
 * Starts the echo server. Resolves once it listens.
 * @param {number} port
 * @param {string} [host]
 * @returns {Promise<import("node:http").Server>}
 */
export function startDemoOrigin(port, host = "127.0.0.1") {
  const server = createServer((req, res) => {
    const chunks = [];
    let size = 0;
    let truncated = false;
    req.on("data", (chunk) => {
      if (size + chunk.length > MAX_BODY) {
        truncated = true;
        chunk = chunk.subarray(0, Math.max(0, MAX_BODY - size));
      }
      size += chunk.length;
      if (chunk.length) chunks.push(chunk);
    });
    req.on("error", () => res.destroy());
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://origin.invalid");
      const query = {};
      for (const [k, v] of url.searchParams) {
        // Repeated parameters become arrays: ?a=1&a=2 → { a: ["1", "2"] }.
        query[k] = k in query ? [].concat(query[k], v) : v;
      }
      const body = Buffer.concat(chunks);
      // One line per request: method and path only. Headers (credentials!) are never logged.
      console.log(`${req.method} ${url.pathname}`);
      const payload = JSON.stringify(
        {
          method: req.method,
          path: url.pathname,
          query,
          headers: echoHeaders(req.headers),
          body: body.toString("utf8"),
          bodyBase64: body.toString("base64"),
          ...(truncated ? { bodyTruncated: true } : {}),
        },
        null,
        2,
      );
      res.writeHead(200, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
      res.end(payload + "\n");
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

function parsePort(raw, fallback) {
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`DEMO_ORIGIN_PORT must be a port number (1-65535), got "${raw}"`);
  return n;
}

async function main() {
  let port;
  try {
    port = parsePort(process.env.DEMO_ORIGIN_PORT, 8788);
  } catch (err) {
    console.error(err.message);
    process.exit(1);
  }
  let server;
  try {
    server = await startDemoOrigin(port);
  } catch (err) {
    console.error(
      err.code === "EADDRINUSE"
        ? `demo origin: 127.0.0.1:${port} is already in use (set DEMO_ORIGIN_PORT to another port)`
        : `demo origin: could not listen on 127.0.0.1:${port}: ${err.message}`,
    );
    process.exit(1);
  }
  console.log(`demo origin listening on http://127.0.0.1:${port}`);
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeAllConnections?.();
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

// Run only when executed directly (the server can also be imported).
if (process.argv[1] && path.resolve(process.argv[1]) === import.meta.filename) await main();
