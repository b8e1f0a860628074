/**
 * CIDR parsing and matching for IPv4 and IPv6, done on BigInts so both families share one path.
 * IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are compared as IPv4.
 */
export interface Cidr {
  family: 4 | 6;
  network: bigint;
  prefix: number;
}

function parseIPv4(ip: string): bigint | null {
  const parts = ip.split(".");
  if (parts.length !== 4) return null;
  let n = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return null;
    n = (n << 8n) | BigInt(Number(p));
  }
  return n;
}

function parseIPv6(ip: string): bigint | null {
  let text = ip;
  let tail: bigint[] = [];
  // A dotted IPv4 tail (`::ffff:10.0.0.1`) becomes two 16-bit groups.
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".", lastColon)) {
    const v4 = parseIPv4(text.slice(lastColon + 1));
    if (v4 === null) return null;
    tail = [v4 >> 16n, v4 & 0xffffn];
    text = text.slice(0, lastColon + 1);
    if (!text.endsWith("::")) text = text.slice(0, -1);
  }
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const parse = (s: string) => (s === "" ? [] : s.split(":"));
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  const groups = [...head, ...rest];
  if (groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) return null;
  const explicit = groups.length + tail.length;
  if (halves.length === 1 ? explicit !== 8 : explicit > 7) return null;
  const zeros = halves.length === 2 ? 8 - explicit : 0;
  const all = [...head.map((g) => BigInt(parseInt(g, 16))), ...Array<bigint>(zeros).fill(0n), ...rest.map((g) => BigInt(parseInt(g, 16))), ...tail];
  return all.reduce((acc, g) => (acc << 16n) | g, 0n);
}

/** Parses an address into family + value; IPv4-mapped IPv6 is reported as IPv4. */
export function parseIp(ip: string): { family: 4 | 6; value: bigint } | null {
  const v4 = parseIPv4(ip);
  if (v4 !== null) return { family: 4, value: v4 };
  const v6 = parseIPv6(ip.replace(/^\[|\]$/g, "").replace(/%.*$/, ""));
  if (v6 === null) return null;
  if (v6 >> 32n === 0xffffn) return { family: 4, value: v6 & 0xffffffffn };
  return { family: 6, value: v6 };
}

/** Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (a /32 or /128). Null when invalid. */
export function parseCidr(text: string): Cidr | null {
  const [addr, bits, ...extra] = text.trim().split("/");
  if (extra.length || !addr) return null;
  const ip = parseIp(addr);
  if (!ip) return null;
  const max = ip.family === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return null;
  const shift = BigInt(max - prefix);
  return { family: ip.family, prefix, network: (ip.value >> shift) << shift };
}

export function cidrContains(cidr: Cidr, ip: { family: 4 | 6; value: bigint }): boolean {
  if (cidr.family !== ip.family) return false;
  const shift = BigInt((cidr.family === 4 ? 32 : 128) - cidr.prefix);
  return (ip.value >> shift) << shift === cidr.network;
}

/** Whether `ip` falls in any of `cidrs` (strings are parsed; invalid entries never match). */
export function ipAllowed(ip: string, cidrs: readonly string[]): boolean {
  const parsed = parseIp(ip);
  if (!parsed) return false;
  return cidrs.some((c) => {
    const cidr = parseCidr(c);
    return cidr !== null && cidrContains(cidr, parsed);
  });
}
