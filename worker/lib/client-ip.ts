import { parseIp } from "./cidr";

/** First octet 240–255 (or its IPv4-mapped form): a cheap test before the full parse, on every request. */
const MAYBE_CLASS_E = /^(?:::ffff:)?2(?:4\d|5[0-5])\./i;

/** Class E (240.0.0.0/4): reserved, never a real client's address. */
const isClassE = (ip: string): boolean => {
  if (!MAYBE_CLASS_E.test(ip)) return false;
  const p = parseIp(ip);
  return p?.family === 4 && p.value >> 28n === 0xfn;
};

/**
 * The client's IP address as Cloudflare's edge reports it: `CF-Connecting-IP`, which the edge
 * always sets itself (a client's own value is overwritten). Never `X-Forwarded-For`, `X-Real-IP`,
 * `True-Client-IP` or `Forwarded`: a client writes those.
 *
 * One exception. With Pseudo IPv4 set to "Overwrite headers", the edge replaces an IPv6 client's
 * `CF-Connecting-IP` with a Class E address hashed from the full IPv6 address and keeps the real
 * one in `CF-Connecting-IPv6`. Each IPv6 address would then look like a separate IPv4 client and
 * rotating addresses inside one /64 would escape per-IP limits, so for a Class E address the
 * IPv6 one is used. A Class E `CF-Connecting-IP` cannot come from a client behind Cloudflare, so
 * a client cannot reach this path by sending `CF-Connecting-IPv6` itself.
 *
 * @example clientIpOf(new Headers({ "cf-connecting-ip": "203.0.113.7" })) // "203.0.113.7"
 */
export function clientIpOf(headers: Pick<Headers, "get">): string | undefined {
  const ip = headers.get("cf-connecting-ip")?.trim();
  if (!ip) return undefined;
  if (isClassE(ip)) {
    const v6 = headers.get("cf-connecting-ipv6")?.trim();
    if (v6 && parseIp(v6)?.family === 6) return v6;
  }
  return ip;
}
