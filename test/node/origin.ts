import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { WebSocketServer } from "ws";

/** What the recording origin saw of one request. */
export interface RecordedRequest {
  method: string;
  /** The raw request target, exactly as it arrived on the wire. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  bodyBase64: string;
  at: number;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/**
 * A real HTTP origin for tests: records every request it receives and echoes it back as JSON.
 * `GET /__records?contains=X` lists recorded requests whose raw URL contains X, or whose
 * X-Test-Marker header is X (not recorded itself).
 * Paths containing `/__redirect` answer 302 to another host; `/__slow/<ms>` waits first;
 * `/__status/<code>` answers that status; `/__reflect` copies every request header into the
 * response as `x-reflected-<name>` (an origin that leaks what it was sent); `/__cors-reflect`
 * answers with CORS headers of its own that allow any Origin, with credentials; `/__reason` answers
 * 401 with the credential it got in its reason phrase; `/__gzip` answers a gzip-encoded body;
 * `/__bytes/<n>` answers n bytes (`?chunked=1`: without Content-Length); `/__trickle/<n>` answers
 * n KiB without Content-Length, 1 KiB every 100 ms;
 * `PUT /__jwks/<name>` stores a JWKS that `GET /__jwks/<name>` then serves (fetches are recorded,
 * so tests can count them); storing `__down__` makes it answer 503 (an issuer outage).
 * WebSocket handshakes to paths containing `/__ws` are recorded like requests, then accepted
 * (choosing the first subprotocol offered): the origin first sends `{"hello":…}` with the
 * handshake's headers, then echoes each message as `echo:<message>`; `/__ws-refuse` answers the
 * handshake with a plain 403 instead.
 */
export async function startRecordingOrigin(port = 0): Promise<{ server: Server; port: number }> {
  const records: RecordedRequest[] = [];
  const jwks = new Map<string, string>();
  const server = createServer(async (req, res) => {
    const url = req.url ?? "/";
    if (url.startsWith("/__records")) {
      const contains = new URL(url, "http://x").searchParams.get("contains") ?? "";
      res.setHeader("content-type", "application/json");
      // A marker in the raw URL, or in X-Test-Marker (for tests whose URL must stay untouched).
      res.end(JSON.stringify(records.filter((r) => r.url.includes(contains) || r.headers["x-test-marker"] === contains)));
      return;
    }
    const body = await readBody(req);
    records.push({ method: req.method ?? "", url, headers: req.headers, bodyBase64: body.toString("base64"), at: Date.now() });
    if (records.length > 20_000) records.splice(0, 10_000);
    const jwksName = /^\/__jwks\/([\w-]+)$/.exec(url)?.[1];
    if (jwksName) {
      if (req.method === "PUT") {
        jwks.set(jwksName, body.toString("utf8"));
        res.writeHead(204).end();
      } else if (jwks.get(jwksName) === "__down__") {
        res.writeHead(503, { "content-type": "text/plain" }).end("issuer down");
      } else if (jwks.has(jwksName)) {
        res.writeHead(200, { "content-type": "application/json" }).end(jwks.get(jwksName));
      } else res.writeHead(404).end();
      return;
    }
    const trickle = /\/__trickle\/(\d+)/.exec(url);
    if (trickle) {
      // n chunks of 1 KiB, one every 100 ms, without Content-Length: a long download a client can abandon.
      res.writeHead(200, { "content-type": "application/octet-stream" });
      let left = Number(trickle[1]);
      const tick = () => {
        if (res.destroyed) return;
        if (left-- <= 0) return void res.end();
        res.write(Buffer.alloc(1024, "t"));
        setTimeout(tick, 100);
      };
      tick();
      return;
    }
    const bytes = /\/__bytes\/(\d+)/.exec(url);
    if (bytes) {
      const payload = Buffer.alloc(Number(bytes[1]), "a");
      if (url.includes("chunked=1")) {
        res.writeHead(200, { "content-type": "application/octet-stream" });
        // Two writes without Content-Length: Node sends them chunked.
        res.write(payload.subarray(0, payload.length >> 1));
        res.end(payload.subarray(payload.length >> 1));
      } else res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(payload.length) }).end(payload);
      return;
    }
    if (url.includes("/__cors-reflect")) {
      // An origin with its own (careless) CORS: any Origin is echoed back, with credentials.
      res.writeHead(200, {
        "content-type": "application/json",
        "access-control-allow-origin": String(req.headers.origin ?? "*"),
        "access-control-allow-credentials": "true",
        "access-control-expose-headers": "x-internal-debug",
        "x-internal-debug": "origin-internals",
      });
      res.end("{}");
      return;
    }
    if (url.includes("/__reflect")) {
      const reflected: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) reflected[`x-reflected-${name}`] = String(value);
      res.writeHead(200, { "content-type": "application/json", ...reflected }).end("{}");
      return;
    }
    const slow = /\/__slow\/(\d+)/.exec(url);
    if (slow) await new Promise((r) => setTimeout(r, Number(slow[1])));
    if (url.includes("/__redirect")) {
      res.writeHead(302, { location: "http://evil.example/steal" });
      res.end();
      return;
    }
    if (url.includes("/__echo-auth")) {
      // A careless origin that reflects the credential it was sent (debug headers, error pages).
      res.writeHead(200, {
        "content-type": "text/plain",
        "x-echo-authorization": req.headers.authorization ?? "",
        "x-echo-origin-key": String(req.headers["x-origin-key"] ?? ""),
        "www-authenticate": `Bearer error="invalid_token", token="${req.headers.authorization ?? ""}"`,
      });
      res.end("ok");
      return;
    }
    if (url.includes("/__reason")) {
      // A careless origin that puts the credential it was sent in its reason phrase.
      res.writeHead(401, `Denied ${req.headers.authorization ?? ""} ${req.headers["x-origin-key"] ?? ""}`, { "content-type": "text/plain" });
      res.end("no");
      return;
    }
    if (url.includes("/__gzip")) {
      // A compressed answer: the gateway must hand it on so the client can still decode it.
      res.writeHead(200, { "content-type": "text/plain", "content-encoding": "gzip" }).end(gzipSync(Buffer.from("gzipped-body ".repeat(50))));
      return;
    }
    const status = /\/__status\/(\d{3})/.exec(url);
    res.writeHead(status ? Number(status[1]) : 200, {
      "content-type": "application/json",
      "x-origin": "recording",
      // Hop-by-hop headers from the origin must not reach the client.
      connection: "keep-alive, x-origin-hop",
      "x-origin-hop": "should-not-pass",
    });
    res.end(
      JSON.stringify({
        method: req.method,
        url,
        headers: req.headers,
        bodyBase64: body.toString("base64"),
      }),
    );
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req, socket, head) => {
    const url = req.url ?? "/";
    records.push({ method: req.method ?? "", url, headers: req.headers, bodyBase64: "", at: Date.now() });
    if (!url.includes("/__ws") || url.includes("/__ws-refuse")) {
      socket.end("HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 7\r\nconnection: close\r\n\r\nrefused");
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(JSON.stringify({ hello: url, protocol: ws.protocol, headers: req.headers }));
      ws.on("message", (data, isBinary) => ws.send(isBinary ? data : `echo:${data.toString()}`));
    });
  });
  // Upgraded sockets are not HTTP connections: closeAllConnections alone would leave them holding close() open.
  const closeAll = server.closeAllConnections.bind(server);
  server.closeAllConnections = () => {
    for (const ws of wss.clients) ws.terminate();
    closeAll();
  };
  // Keep idle connections longer than workerd's pool does: when Node closes an idle keep-alive
  // connection just as workerd reuses it, the request fails with "Network connection lost".
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}
