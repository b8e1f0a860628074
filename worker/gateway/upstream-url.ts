import { GatewayError } from "../errors";

/**
 * Characters and sequences that must never appear in a raw request path. Encoded slashes,
 * backslashes, dots and percent signs are how path-normalization bypasses are built (the
 * gateway and the origin decode differently); `;` starts matrix parameters some origins strip;
 * NUL and control characters end strings early in some stacks. Refusing them outright is
 * simpler and safer than trying to normalize them the way every origin would.
 *
 * Overlong UTF-8 (`%c0%ae` = ".", `%c0%af` = "/", `%e0%80%ae` …) is never valid UTF-8, but
 * lenient decoders (old IIS, some Java and PHP stacks) turn it into dots and slashes: refused
 * for the same reason as `%2e` and `%2f`. C0/C1 lead bytes and E0 80–9F / F0 80–8F are exactly
 * the overlong forms; F5–FF never start valid UTF-8 (F8 and FC are the 5- and 6-byte overlong
 * leads).
 *
 * A `%` not followed by two hex digits is no escape at all, and decoders disagree on it: IIS
 * reads `%u002e` as "." and `%u2215` as a slash, some stacks decode nibble by nibble
 * (`%%32%65`, `%2%65` → `%2e` → "."), others keep it literally. The `i` flag covers both cases
 * of the hex digits.
 */
const FORBIDDEN_IN_PATH = /%2f|%5c|%2e|%25|%00|%c[01]|%e0%[89]|%f0%8|%f[5-9a-f]|%(?![0-9a-f]{2})|\\|;|[\x00-\x1f\x7f]/i;

/** A segment that is exactly "." or "..". */
const DOT_SEGMENT = /\/\.{1,2}(?=\/|$)/;

/** Why a raw path is not canonical, or null when it is. */
export function nonCanonicalReason(rawPath: string): string | null {
  if (!rawPath.startsWith("/")) return "path must start with /";
  if (FORBIDDEN_IN_PATH.test(rawPath)) return "path contains an encoded separator, dot, percent, an invalid or overlong escape, backslash, ';' or control character";
  if (rawPath.includes("//")) return "path contains an empty segment (//)";
  if (DOT_SEGMENT.test(rawPath)) return "path contains a dot segment";
  return null;
}

/** The raw path of a request URL (no query), as received. */
export function rawPathOf(url: string): string {
  const afterScheme = url.indexOf("//") + 2;
  const start = url.indexOf("/", afterScheme);
  if (start === -1) return "/";
  let end = url.indexOf("?", start);
  const hash = url.indexOf("#", start);
  if (end === -1 || (hash !== -1 && hash < end)) end = hash;
  return end === -1 ? url.slice(start) : url.slice(start, end);
}

/** The query of a request URL, `?…` or "" (a request URL has no fragment; one is dropped anyway). */
export function rawSearchOf(url: string): string {
  const q = url.indexOf("?");
  if (q === -1) return "";
  const hash = url.indexOf("#", q);
  const search = hash === -1 ? url.slice(q) : url.slice(q, hash);
  return search === "?" ? "" : search;
}

// Base URLs are few and fixed per isolate: parse each once.
const parsedBases = new Map<string, { origin: string; basePath: string }>();
function parseBase(base: string): { origin: string; basePath: string } {
  let parsed = parsedBases.get(base);
  if (!parsed) {
    const u = new URL(base);
    parsed = { origin: u.origin, basePath: u.pathname.replace(/\/+$/, "") };
    parsedBases.set(base, parsed);
  }
  return parsed;
}

// RFC 3986 path characters (pchar and "/"): a remainder made only of these is already in the
// form a URL parser would give it, so the target needs no parse to be checked.
const PLAIN_PATH = /^[A-Za-z0-9\-._~!$&'()*+,=:@%/]*$/;

/**
 * Joins an upstream base URL and a canonical path remainder, then proves the result stayed on
 * the configured origin and under its path prefix. Any surprise is a 400, never a forward.
 * Returns the URL as a string (what fetch takes).
 *
 * A canonical remainder (it starts with "/", has no "//", backslash, dot segment or encoded
 * separator) appended to `scheme://host[:port]/prefix` cannot reach the authority or leave the
 * prefix. When it is also plain (PLAIN_PATH) the URL parser would return it unchanged, so the
 * string is the target; anything else is parsed and checked, which is one URL parse per request
 * that the common case skips.
 *
 * @example buildUpstreamUrl("https://api.example/v2", "/orders/7", "?x=1") // "https://api.example/v2/orders/7?x=1"
 */
export function buildUpstreamUrl(base: string, remainder: string, search: string): string {
  const { origin, basePath } = parseBase(base);
  if (remainder !== "" && !remainder.startsWith("/")) throw new GatewayError("PATH_INVALID", "The path remainder is not a path.");
  const reason = remainder === "" ? null : nonCanonicalReason(remainder);
  if (reason) throw new GatewayError("PATH_INVALID", `The request path is not canonical: ${reason}.`);
  const path = basePath + remainder || "/";
  const query = search === "?" ? "" : search;
  if (PLAIN_PATH.test(remainder)) return origin + path + query;
  const target = new URL(origin + path + query);
  const underPrefix = basePath === "" || target.pathname === basePath || target.pathname.startsWith(basePath + "/");
  if (target.origin !== origin || target.pathname !== path || !underPrefix || target.username || target.password) {
    throw new GatewayError("PATH_INVALID", "The request path would leave the upstream.");
  }
  return target.href;
}
