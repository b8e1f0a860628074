import { describe, expect, it } from "vitest";
import { generateApiKey, hashApiKey, isWellFormedApiKey, KEY_PREFIX } from "./api-key";
import { ipAllowed, parseCidr, parseIp } from "./cidr";
import { clientIpOf } from "./client-ip";
import { crc32 } from "./crc32";
import { newId } from "./ids";
import { once } from "./once";
import { grants, isPermitted } from "./permissions";
import { purgeIsolateCaches, TtlCache } from "./ttl-cache";

describe("api keys", () => {
  it("have the prefix, ≥128 bits of base62 and a valid checksum", () => {
    const { key, start } = generateApiKey();
    expect(key.startsWith(KEY_PREFIX)).toBe(true);
    expect(key).toMatch(/^pcl_[0-9A-Za-z]{30}$/);
    // 24 random base62 chars: 24 * log2(62) ≈ 142.9 bits.
    expect(24 * Math.log2(62)).toBeGreaterThanOrEqual(128);
    expect(start).toBe(key.slice(0, 8));
    expect(isWellFormedApiKey(key)).toBe(true);
  });

  it("never repeat", () => {
    const keys = new Set(Array.from({ length: 2000 }, () => generateApiKey().key));
    expect(keys.size).toBe(2000);
  });

  it("reject every single-character typo and wrong shapes via the checksum, without I/O", () => {
    const { key } = generateApiKey();
    const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for (let i = KEY_PREFIX.length; i < key.length; i++) {
      const swapped = alphabet[(alphabet.indexOf(key[i]!) + 1) % 62]!;
      expect(isWellFormedApiKey(key.slice(0, i) + swapped + key.slice(i + 1))).toBe(false);
    }
    for (const bad of ["", "pcl_", key.slice(0, -1), `${key}x`, key.replace("pcl_", "pcx_"), key.toLowerCase(), ` ${key}`]) {
      expect(isWellFormedApiKey(bad), bad).toBe(false);
    }
  });

  it("hash with SHA-256 (hex)", async () => {
    expect(await hashApiKey("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });

  it("use the standard CRC-32", () => {
    expect(crc32("123456789")).toBe(0xcbf43926);
  });
});

describe("once", () => {
  it("builds on the first call, not before, and returns that same value afterwards", () => {
    let builds = 0;
    const value = once(() => ({ n: ++builds }));
    expect(builds).toBe(0);
    expect(value.built).toBe(false);
    const first = value();
    expect(value.built).toBe(true);
    expect(first).toEqual({ n: 1 });
    expect(value()).toBe(first);
    expect(builds).toBe(1);
  });

  it("keeps a falsy value built once (undefined, 0) instead of building again", () => {
    let builds = 0;
    const value = once(() => {
      builds++;
      return undefined;
    });
    value();
    value();
    expect(builds).toBe(1);
  });

  it("builds again after a build that threw: a failed first admin request does not break the next", () => {
    let calls = 0;
    const value = once(() => {
      if (++calls === 1) throw new Error("first build fails");
      return "built";
    });
    expect(() => value()).toThrow("first build fails");
    expect(value.built).toBe(false);
    expect(value()).toBe("built");
    expect(calls).toBe(2);
  });
});

describe("ids", () => {
  it("carry a type prefix and sort by creation time", () => {
    const a = newId("user", 1_700_000_000_000);
    const b = newId("user", 1_700_000_000_001);
    expect(a).toMatch(/^usr_[0-9a-z]{9}[0-9A-Za-z]{12}$/);
    expect(a < b).toBe(true);
    expect(newId("key")).toMatch(/^key_/);
  });

  it("cannot be guessed from a neighbour: ≥ 64 random bits after the timestamp, spread over the whole alphabet", () => {
    expect(12 * Math.log2(62)).toBeGreaterThanOrEqual(64);
    // Ids minted in the same millisecond share only the timestamp.
    const tails = Array.from({ length: 5000 }, () => newId("user", 1_700_000_000_000).slice(13));
    expect(new Set(tails).size).toBe(tails.length);
    // Every character position uses (close to) all 62 symbols: no fixed or counter-like part.
    for (let i = 0; i < 12; i++) expect(new Set(tails.map((t) => t[i])).size).toBeGreaterThan(55);
  });
});

describe("permissions", () => {
  it("match literally and with * wildcards", () => {
    expect(grants(["orders:read"], "orders:read")).toBe(true);
    expect(grants(["orders:read"], "orders:readx")).toBe(false);
    expect(grants(["orders:*"], "orders:refund:create")).toBe(true);
    expect(grants(["orders:*"], "billing:read")).toBe(false);
    expect(grants(["*"], "anything:at:all")).toBe(true);
    expect(grants(["*:read"], "orders:read")).toBe(true);
    expect(grants(["*:read"], "orders:write")).toBe(false);
    // Regex metacharacters in permissions are literal.
    expect(grants(["a.b"], "aXb")).toBe(false);
  });
  it("let a key scope narrow but never widen", () => {
    expect(isPermitted(["orders:*"], ["orders:read"], "orders:read")).toBe(true);
    expect(isPermitted(["orders:*"], ["orders:read"], "orders:write")).toBe(false);
    expect(isPermitted(["orders:read"], ["*"], "orders:write")).toBe(false);
    expect(isPermitted(["orders:read"], null, "orders:read")).toBe(true);
    expect(isPermitted([], null, "orders:read")).toBe(false);
  });
});

describe("CIDR", () => {
  it("parses IPv4, IPv6 and mapped addresses", () => {
    expect(parseIp("10.1.2.3")).toEqual({ family: 4, value: 0x0a010203n });
    expect(parseIp("::ffff:10.1.2.3")).toEqual({ family: 4, value: 0x0a010203n });
    expect(parseIp("2001:db8::1")?.family).toBe(6);
    expect(parseIp("::1")).toEqual({ family: 6, value: 1n });
    for (const bad of ["10.1.2", "256.0.0.1", "1::2::3", "gggg::", "", "1.2.3.4.5", "1:2:3:4:5:6:7:8:9"]) expect(parseIp(bad), bad).toBeNull();
  });
  it("matches addresses inside and outside ranges", () => {
    expect(ipAllowed("10.200.3.4", ["10.0.0.0/8"])).toBe(true);
    expect(ipAllowed("11.0.0.1", ["10.0.0.0/8"])).toBe(false);
    expect(ipAllowed("192.0.2.7", ["192.0.2.7"])).toBe(true);
    expect(ipAllowed("192.0.2.8", ["192.0.2.7/32"])).toBe(false);
    expect(ipAllowed("2001:db8:abcd::5", ["2001:db8::/32"])).toBe(true);
    expect(ipAllowed("2001:db9::5", ["2001:db8::/32"])).toBe(false);
    expect(ipAllowed("::ffff:10.0.0.1", ["10.0.0.0/8"])).toBe(true);
    expect(ipAllowed("10.0.0.1", ["::/0"])).toBe(false); // families never cross
    expect(ipAllowed("anything", ["0.0.0.0/0"])).toBe(false);
    expect(parseCidr("10.0.0.0/33")).toBeNull();
    expect(parseCidr("2001:db8::/129")).toBeNull();
    expect(parseCidr("10.0.0.0/8/1")).toBeNull();
  });
});

describe("client IP", () => {
  const of = (h: Record<string, string>) => clientIpOf(new Headers(h));
  it("is CF-Connecting-IP alone: forwarding headers a client writes are never read", () => {
    expect(of({ "cf-connecting-ip": "203.0.113.7", "x-forwarded-for": "10.0.0.1", "x-real-ip": "10.0.0.2", "true-client-ip": "10.0.0.3", forwarded: "for=10.0.0.4" })).toBe("203.0.113.7");
    expect(of({ "x-forwarded-for": "10.0.0.1", "x-real-ip": "10.0.0.2" })).toBeUndefined();
    expect(of({ "cf-connecting-ip": "" })).toBeUndefined();
  });

  it("takes CF-Connecting-IPv6 only when CF-Connecting-IP is a Class E (Pseudo IPv4) address", () => {
    expect(of({ "cf-connecting-ip": "240.16.0.9", "cf-connecting-ipv6": "2001:db8::1" })).toBe("2001:db8::1");
    expect(of({ "cf-connecting-ip": "203.0.113.7", "cf-connecting-ipv6": "2001:db8::1" })).toBe("203.0.113.7");
    expect(of({ "cf-connecting-ip": "240.16.0.9", "cf-connecting-ipv6": "203.0.113.7" })).toBe("240.16.0.9");
    expect(of({ "cf-connecting-ip": "240.16.0.9" })).toBe("240.16.0.9");
  });
});

describe("TtlCache", () => {
  it("keeps a value for its TTL, and a purge drops it", () => {
    const cache = new TtlCache<string>();
    cache.set("k", "v", 1_000, 10_000);
    expect(cache.get("k", 10_999)).toBe("v");
    expect(cache.get("k", 11_000)).toBeUndefined();
    cache.set("k", "v", 1_000, 10_000);
    purgeIsolateCaches();
    expect(cache.get("k", 10_001)).toBeUndefined();
  });

  it("does not cache a read that a purge overtook (it may predate the change)", () => {
    const cache = new TtlCache<string>();
    const readAt = cache.generation; // a read starts…
    purgeIsolateCaches(); // …an admin change lands while it is out…
    cache.set("k", "old", 1_000, 10_000, readAt); // …and its answer comes back
    expect(cache.get("k", 10_001)).toBeUndefined();
    const fresh = cache.generation;
    cache.set("k", "new", 1_000, 10_000, fresh);
    expect(cache.get("k", 10_001)).toBe("new");
  });
});
