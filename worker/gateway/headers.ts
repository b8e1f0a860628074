/** RFC 9110 §7.6.1 hop-by-hop headers, plus the non-standard ones proxies still see. */
const HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"];

/**
 * Headers a client could set to impersonate someone or steer the origin: forwarding and
 * client-address headers (we set our own), our own identity headers, and method overrides
 * (the gateway authorized the request's real method, not an override). Every `x-forwarded-*`
 * name is dropped by prefix (FORWARDED_PREFIX), not listed: auth proxies and meshes read
 * `-User`, `-Email`, `-Groups`, `-Client-Cert`, `-Ssl`, `-Scheme`, `-Uri`… as vouched for.
 */
const SPOOFABLE = [
  "forwarded",
  "x-real-ip",
  "x-client-ip",
  "client-ip",
  "x-cluster-client-ip",
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

const HOP = new Set(HOP_BY_HOP);
const DROP_FROM_REQUEST = new Set([...HOP_BY_HOP, ...SPOOFABLE, "host"]);

/**
 * Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1). A client (or origin) can put
 * anything there: non-token entries name no header and are ignored (Headers.delete throws on
 * them, which would turn a junk header into a 500).
 */
function connectionNamed(headers: Headers): Set<string> | undefined {
  const connection = headers.get("connection");
  if (connection === null) return undefined;
  const named = new Set<string>();
  for (const t of connection.split(",")) {
    const name = t.trim().toLowerCase();
    if (HEADER_NAME.test(name)) named.add(name);
  }
  return named;
}

/**
 * Deletes from `headers` the names `drop` picks, and those its Connection header names. One pass
 * over the names, then a delete only for what is actually there: a typical message carries none
 * of the ~30 names we drop, and each delete is a call into the runtime. With `leaks`, a header
 * whose value carries a secret is dropped too (values are read only then).
 */
function stripInPlace(headers: Headers, drop: (name: string) => boolean, leaks?: (value: string) => boolean): void {
  let doomed: string[] | undefined;
  let kept: string[] | undefined;
  let hasConnection = false;
  const visit = (name: string, value?: string) => {
    if (name === "connection") hasConnection = true;
    if (drop(name) || (value !== undefined && leaks!(value))) (doomed ??= []).push(name);
    else (kept ??= []).push(name);
  };
  if (leaks) for (const [name, value] of headers) visit(name, value);
  else for (const name of headers.keys()) visit(name);
  // Names listed in Connection, among those still kept (no second pass over the headers).
  if (hasConnection && kept) {
    const named = connectionNamed(headers)!;
    for (const name of kept) if (named.has(name)) (doomed ??= []).push(name);
  }
  // Deleted only after the pass: the iteration above must not see its own deletions.
  if (doomed) for (const name of doomed) headers.delete(name);
}

const FORWARDED_PREFIX = "x-forwarded-";
const dropsAsSpelled = (name: string) =>
  DROP_FROM_REQUEST.has(name) || name.startsWith(IDENTITY_HEADER_PREFIX) || name.startsWith("cf-") || name.startsWith(FORWARDED_PREFIX);
// CGI-style origins (PHP, WSGI, Rack) read `X_Forwarded_For` and `X-Forwarded-For` as the same
// variable, so a name with underscores is dropped when its dashed spelling would be.
const dropFromRequest = (name: string) => dropsAsSpelled(name) || (name.includes("_") && dropsAsSpelled(name.replaceAll("_", "-")));
const dropFromResponse = (name: string) => HOP.has(name);

/**
 * The headers a forwarded request starts from: the client's, minus hop-by-hop headers,
 * spoofable identity/forwarding headers and Cloudflare's own `cf-*` headers. Plugins then edit
 * this set; the forwarder adds identity and origin credentials last, so nothing a client
 * sends (including `Connection: <our header>`) can remove or replace them.
 */
export function sanitizeRequestHeaders(incoming: Headers): Headers {
  // A copy (a request's own headers are immutable); copying keeps repeated fields as sent.
  const headers = new Headers(incoming);
  stripInPlace(headers, dropFromRequest);
  return headers;
}

/**
 * Whether a response header value carries one of the injected secrets; undefined when none was
 * injected. Compared with what was actually sent: `Headers.set` trims leading and trailing
 * whitespace, so a secret ending in "\n" (an env var piped from a file) or " " goes out without
 * it, and an origin echoing it back would not contain the stored form.
 */
function leaksOf(injectedSecrets: readonly string[]): ((value: string) => boolean) | undefined {
  const secrets = injectedSecrets.map((s) => s.trim()).filter((s) => s !== "");
  if (secrets.length === 0) return undefined;
  return (value) => secrets.some((s) => (s.length >= 8 ? value.includes(s) : value.trim() === s));
}

/**
 * Strips, from a response's own headers, what must not reach the client: hop-by-hop headers
 * and any header that carries (part of) a credential the gateway injected (an origin echoing
 * `Authorization` in a debug header). Secrets shorter than 8 characters are matched
 * whole-value only, so a short secret does not knock out unrelated headers. In place, on the
 * copy the Response constructor already made (`new Response(body, originResponse)`): a second
 * copy measured ~5 µs/request (bench/README.md, "The response copy").
 */
export function sanitizeResponseHeaders(headers: Headers, injectedSecrets: readonly string[] = []): void {
  stripInPlace(headers, dropFromResponse, leaksOf(injectedSecrets));
}
