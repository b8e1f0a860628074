import type { Context } from "hono";
import type { GatewayEnv } from "../env";
import { GatewayError } from "../errors";
import { IDENTITY_HEADER_PREFIX, sanitizeResponseHeaders } from "./headers";
import { buildUpstreamUrl, rawPathOf, rawSearchOf } from "./upstream-url";
import type { CompiledUpstream } from "./types";

// Resolved per isolate: env vars do not change while an isolate lives.
const resolvedBase = new WeakMap<object, Map<string, string>>();

/** The upstream's base URL, honouring `urlFromEnv` (validated once, like the config's own). */
export function upstreamBaseUrl(upstream: CompiledUpstream, env: Record<string, unknown>): string {
  let perEnv = resolvedBase.get(env);
  if (!perEnv) resolvedBase.set(env, (perEnv = new Map()));
  let base = perEnv.get(upstream.name);
  if (base === undefined) {
    base = upstream.url;
    const override = upstream.urlFromEnv ? env[upstream.urlFromEnv] : undefined;
    if (typeof override === "string" && override !== "") {
      let ok = false;
      try {
        const u = new URL(override);
        ok = (u.protocol === "http:" || u.protocol === "https:") && !u.search && !u.hash && !u.username && !u.password;
      } catch {
        ok = false;
      }
      if (!ok) throw new GatewayError("GATEWAY_MISCONFIGURED", `Upstream "${upstream.name}": ${upstream.urlFromEnv} is not a plain http(s) URL.`);
      base = override;
    }
    perEnv.set(upstream.name, base);
  }
  return base;
}

/** Anything but tab and printable ASCII: what a header value must not hold. */
const NOT_HEADER_SAFE = /[^\t\x20-\x7e]/;

const USER_ID_HEADER = `${IDENTITY_HEADER_PREFIX}user-id`;
const USER_NAME_HEADER = `${IDENTITY_HEADER_PREFIX}user-name`;
const USER_GROUP_HEADER = `${IDENTITY_HEADER_PREFIX}user-group`;
const KEY_ID_HEADER = `${IDENTITY_HEADER_PREFIX}key-id`;
const ROUTE_HEADER = `${IDENTITY_HEADER_PREFIX}route`;
/** Every identity header the forwarder writes: what the origin gets is these for this request's caller, or none. */
const IDENTITY_HEADERS = [USER_ID_HEADER, USER_NAME_HEADER, USER_GROUP_HEADER, KEY_ID_HEADER];

/**
 * The last handler of every route: sends the request to the route's upstream and streams the
 * answer back. Identity headers and the origin credential are set here, after every plugin, so
 * neither a client nor a plugin can forge or strip them (identity headers a plugin set are
 * replaced or removed). Redirects are passed back, never followed, so the origin credential can
 * only ever go to the configured origin.
 */
export async function forwardToUpstream(c: Context<GatewayEnv>): Promise<Response> {
  // c.get, not c.var: Hono builds a fresh object of every variable on each `c.var` access.
  const route = c.get("route");
  const upstream = c.get("upstream");
  const identity = c.get("identity");
  const requestId = c.get("requestId");
  const clientIp = c.get("clientIp");
  const forward = c.get("forward");
  // The raw URL's parts, without parsing it again: the path guard already proved it canonical.
  const url = c.req.url;
  const remainder = route.wildcard ? rawPathOf(url).slice(route.prefix.length) : "";
  const target = buildUpstreamUrl(upstreamBaseUrl(upstream, c.env), remainder, rawSearchOf(url));

  const headers = c.get("upstreamHeaders");
  // Clients cannot send x-portcullis-* (sanitizeRequestHeaders), but a plugin can set them: what
  // one left is cleared, so the origin sees exactly this caller's identity, or none. `set`
  // replaces every value of a name, so only a name not written below needs its delete.
  // Off for origins that should not learn who called (a third-party API): `identityHeaders: false`.
  // Only a plugin without the `leavesIdentityHeaders` trait (a custom one) can have set them.
  if (identity && upstream.identityHeaders) {
    headers.set(USER_ID_HEADER, identity.user.id);
    headers.set(USER_NAME_HEADER, identity.user.name);
    if (identity.user.group) headers.set(USER_GROUP_HEADER, identity.user.group);
    else if (route.clearsIdentity) headers.delete(USER_GROUP_HEADER);
    headers.set(KEY_ID_HEADER, identity.key.id);
  } else if (route.clearsIdentity) for (const name of IDENTITY_HEADERS) headers.delete(name);
  headers.set(ROUTE_HEADER, route.name);
  headers.set("x-request-id", requestId);
  if (clientIp) headers.set("x-forwarded-for", clientIp);
  headers.set("x-forwarded-proto", url.startsWith("https:") ? "https" : "http");
  if (upstream.credential) {
    const secret = c.env[upstream.credential.fromEnv];
    if (typeof secret !== "string" || secret === "") {
      // Forwarding without the credential would hand the origin an anonymous request; refuse instead.
      throw new GatewayError("GATEWAY_MISCONFIGURED", `Upstream "${upstream.name}" has no credential configured.`);
    }
    // What `Headers.set` sends is the trimmed value; inside it, a control character would fail the
    // request with a bare TypeError, and a non-ASCII one makes the runtime log the whole value.
    if (NOT_HEADER_SAFE.test(secret.trim())) {
      throw new GatewayError("GATEWAY_MISCONFIGURED", `Upstream "${upstream.name}": ${upstream.credential.fromEnv} is not printable ASCII.`);
    }
    headers.set(upstream.credential.header, upstream.credential.prefix + secret);
    forward.injectedSecrets.push(secret);
  }
  const { timeoutMs, idleTimeoutMs, maxResponseBytes, injectedSecrets } = forward;

  const method = c.req.method;
  // Only a route that proxies WebSockets reads the header: every other request pays nothing.
  const upgrade = route.websocket && method === "GET" && c.req.raw.headers.get("upgrade")?.toLowerCase() === "websocket";
  // Dropped with the hop-by-hop headers; the runtime makes its own handshake with the origin.
  if (upgrade) headers.set("upgrade", "websocket");
  const replaced = forward.body;
  let body = method === "GET" || method === "HEAD" ? null : replaced !== undefined ? replaced : c.req.raw.body;
  if (body !== null && replaced === undefined && c.req.raw.bodyUsed) body = await bodyReadByPlugin(c, headers);
  let res: Response;
  const sentAt = Date.now();
  // timeoutMs bounds the wait for the origin's answer (its status and headers), not the body: a
  // download, an event stream or a long poll that outlasts it must not be cut off after a 200.
  // The timer is cleared however fetch settles, so nothing is left pending once headers are in.
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  try {
    res = await fetch(target, { method, headers, body, redirect: "manual", signal: abort.signal });
  } catch (err) {
    if (abort.signal.aborted) throw new GatewayError("UPSTREAM_TIMEOUT", `Upstream "${upstream.name}" did not answer within ${timeoutMs} ms.`);
    console.error(JSON.stringify({ level: "warn", msg: "upstream fetch failed", requestId, upstream: upstream.name, error: String(err) }));
    throw new GatewayError("UPSTREAM_UNAVAILABLE", `Upstream "${upstream.name}" could not be reached.`);
  } finally {
    clearTimeout(timer);
  }
  c.set("origin", { status: res.status, latencyMs: Date.now() - sentAt });
  if (upgrade && res.webSocket) {
    // The origin accepted: hand its end to the client (not accepted here, so the runtime joins
    // the two). Its handshake headers (the chosen subprotocol) pass, cleaned like any response's.
    const ws = new Response(null, { status: 101, webSocket: res.webSocket, headers: res.headers });
    sanitizeResponseHeaders(ws.headers, injectedSecrets);
    return ws;
  }
  let resBody = res.body;
  if (maxResponseBytes !== undefined && resBody) {
    const declared = Number(res.headers.get("content-length"));
    if (Number.isFinite(declared) && declared > maxResponseBytes) {
      await resBody.cancel();
      throw new GatewayError("UPSTREAM_RESPONSE_TOO_LARGE", `The upstream's response is larger than ${maxResponseBytes} bytes.`);
    }
    // Without a usable Content-Length the status line is already decided when the limit is
    // hit, so the stream is cut off (the client sees an aborted body, never the excess).
    resBody = resBody.pipeThrough(byteLimit(maxResponseBytes, () => new GatewayError("UPSTREAM_RESPONSE_TOO_LARGE")));
  }
  if (idleTimeoutMs !== undefined && resBody) {
    resBody = idleBound(resBody, idleTimeoutMs, () => {
      console.error(JSON.stringify({ level: "warn", msg: "upstream body idle", requestId, upstream: upstream.name, idleTimeoutMs }));
      return new GatewayError("UPSTREAM_TIMEOUT", `Upstream "${upstream.name}" sent nothing for ${idleTimeoutMs} ms.`);
    });
  }
  // The constructor copies the headers once (a fetched response's own headers are immutable);
  // the copy is then cleaned in place. The origin's reason phrase is not passed on: it is free
  // text the header scrub never sees (an origin can put the credential it got there), so the
  // client gets the runtime's standard phrase for the status. X-Request-Id goes on by the
  // request-context middleware, on this and every other response.
  const out = new Response(resBody, { status: res.status, headers: res.headers });
  sanitizeResponseHeaders(out.headers, injectedSecrets);
  return out;
}

/**
 * The client's body when a plugin has already read it (`c.req.json()`, `.text()`, a Hono
 * validator) without setting `forward.body`: the stream is spent, and sending it made fetch throw,
 * which read as a 502 UPSTREAM_UNAVAILABLE blaming an origin nobody called. Hono keeps what it
 * read: the same bytes come back from `c.req.arrayBuffer()` (text and JSON are kept as the text,
 * re-encoded as UTF-8). A form Hono parsed is sent re-encoded, with its new multipart boundary.
 * A plugin that read `c.req.raw` itself left nothing: that is the gateway's configuration at
 * fault, said so.
 */
async function bodyReadByPlugin(c: Context<GatewayEnv>, headers: Headers): Promise<ArrayBuffer | ReadableStream | null> {
  const cache = c.req.bodyCache;
  // Sent with the length of what is actually sent (the runtime sets it for a buffer).
  headers.delete("content-length");
  if (cache.arrayBuffer || cache.text || cache.blob || cache.json) return c.req.arrayBuffer();
  if (cache.formData) {
    const form = new Response(await cache.formData);
    headers.set("content-type", form.headers.get("content-type")!);
    return form.body;
  }
  throw new GatewayError("GATEWAY_MISCONFIGURED", "A plugin read the request body and did not hand it on (set forward.body to what it read).");
}

/**
 * `body`, re-streamed so that each read waits at most `ms` for the origin's next chunk; past it the
 * origin's body is cancelled (closing its connection) and the stream errors with `onIdle()`. Timed
 * per read the client asks for (a pull-based stream with no buffer of its own): a client that reads
 * slowly holds the origin back through backpressure, and that time is not the origin's idleness.
 */
export function idleBound(body: ReadableStream<Uint8Array>, ms: number, onIdle: () => Error): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let timer!: ReturnType<typeof setTimeout>;
        const idle = new Promise<"idle">((resolve) => (timer = setTimeout(() => resolve("idle"), ms)));
        try {
          const r = await Promise.race([reader.read(), idle]);
          if (r === "idle") {
            const err = onIdle();
            controller.error(err);
            await reader.cancel(err).catch(() => {});
          } else if (r.done) controller.close();
          else controller.enqueue(r.value);
        } catch (err) {
          controller.error(err);
        } finally {
          clearTimeout(timer);
        }
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}

/** A pass-through stream that errors once more than `max` bytes have flowed through it. */
export function byteLimit(max: number, onExceeded: () => Error): TransformStream<Uint8Array, Uint8Array> {
  let seen = 0;
  return new TransformStream({
    transform(chunk, controller) {
      seen += chunk.byteLength;
      if (seen > max) controller.error(onExceeded());
      else controller.enqueue(chunk);
    },
  });
}
