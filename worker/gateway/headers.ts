/** RFC 9110 §7.6.1 hop-by-hop headers, plus the non-standard ones proxies still see. */
const HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"];

/**
 * Headers a client could set to impersonate someone or steer the origin: forwarding and
 * client-address headers (we set our own), our own identity headers, and method overrides
 * (the gateway authorized the request's real method, not an override).
 */
const SPOOFABLE = [
  "forwarded",
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-proto",
  "x-forwarded-port",
  "x-forwarded-prefix",
  "x-forwarded-server",
  "x-real-ip",
  "x-client-ip",
  "true-client-ip",
  "x-original-url",
  "x-rewrite-url",
  "x-original-forwarded-for",
  "x-http-method-override",
  "x-http-method",
  "x-method-override",
  "x-request-id",
];
/** Prefix of the identity headers the gateway sends to origins; never accepted from clients. */
export const IDENTITY_HEADER_PREFIX = "x-portcullis-";

// RFC 9110 token: what a header name may be. Anything else in Connection names no header.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

function stripHopByHop(headers: Headers): void {
  // Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1). Read them before deleting.
  // A client (or origin) can put anything in Connection: non-token entries are skipped, since
  // Headers.delete throws on them and that would turn a junk header into a 500.
  const named = (headers.get("connection") ?? "")
    .split(",")
    .map((t) => t.trim().toLowerCase())
    .filter((t) => HEADER_NAME.test(t));
  for (const h of [...HOP_BY_HOP, ...named]) headers.delete(h);
}

/**
 * The headers a forwarded request starts from: the client's, minus hop-by-hop headers,
 * spoofable identity/forwarding headers and Cloudflare's own `cf-*` headers. Plugins then edit
 * this set; the forwarder adds identity and origin credentials last, so nothing a client
 * sends (including `Connection: <our header>`) can remove or replace them.
 */
export function sanitizeRequestHeaders(incoming: Headers): Headers {
  const headers = new Headers(incoming);
  stripHopByHop(headers);
  for (const h of SPOOFABLE) headers.delete(h);
  for (const name of [...headers.keys()]) {
    if (name.startsWith(IDENTITY_HEADER_PREFIX) || name.startsWith("cf-")) headers.delete(name);
  }
  headers.delete("host");
  return headers;
}

/** Response headers passed back to the client: the origin's, minus hop-by-hop ones. */
export function sanitizeResponseHeaders(incoming: Headers): Headers {
  const headers = new Headers(incoming);
  stripHopByHop(headers);
  return headers;
}
