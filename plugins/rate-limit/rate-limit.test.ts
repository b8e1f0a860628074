import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { defineGateway, GatewayConfigError } from "../../worker/gateway/config";
import { grantSize, leaseBucket, leaseWindow, periodBounds, usageWindow } from "../../worker/limits/algorithms";
import { ipBucket, limitRegistry } from "../../worker/limits/engine";
import { LeaseBook, NEGATIVE_TTL_MS, spendLeased } from "../../worker/limits/lease-book";
import { LimiterUnavailableError, type LeaseReply, type LimitSpec } from "../../worker/limits/types";
import { rateLimit } from ".";

const req = (spec: LimitSpec, want: number, give = 0, giveWindow = 0) => ({ spec, want, give, giveWindow });

describe("rate-limit options", () => {
  // The factory records invalid options; defineGateway refuses to load and names route, plugin and field.
  const load = (plugin: ReturnType<typeof rateLimit>) => () =>
    defineGateway({ upstreams: { api: { url: "https://api.example" } }, routes: [{ name: "r", path: "/r/*", upstream: "api", plugins: [plugin] }] });
  it("fails at config load, naming the field", () => {
    expect(load(rateLimit({ limit: 10, window: "2h" }))).toThrow(GatewayConfigError);
    expect(load(rateLimit({ limit: 10, window: "2h" }))).toThrow(/plugins\[0\]\.window \(route "r", plugin "rate-limit"\)/);
    expect(load(rateLimit({ limit: -1 }))).toThrow(/limit/);
    expect(load(rateLimit({ limit: 1, by: ["user", "user"] }))).toThrow(/by/);
    expect(load(rateLimit({ limit: 1, name: "Bad Name" }))).toThrow(/name/);
    expect(load(rateLimit({ limit: 1, bogus: true } as never))).toThrow(GatewayConfigError);
  });

  it("applies the documented defaults", () => {
    const p = rateLimit({ limit: 10 });
    expect(p.name).toBe("rate-limit");
    expect(limitRegistry.get(p.handler)).toMatchObject({
      kind: "rate",
      name: "rate",
      algorithm: "sliding-window",
      windowMs: 60_000,
      by: ["user"],
      failMode: "open",
      dryRun: false,
      backend: "auto",
      durableObjectBinding: "LIMITER",
      timeoutMs: 1000,
      leaseMax: "auto",
      headers: "draft-06",
      upstash: { urlFromEnv: "UPSTASH_REDIS_REST_URL", tokenFromEnv: "UPSTASH_REDIS_REST_TOKEN", prefix: "portcullis:limits" },
    });
  });
});

describe("counting rules", () => {
  const fixed: LimitSpec = { algorithm: "fixed-window", limit: 10, windowMs: 60_000 };
  const sliding: LimitSpec = { algorithm: "sliding-window", limit: 10, windowMs: 60_000 };

  it("grants at most a quarter of what is left, at least 1, never more than is left", () => {
    expect(grantSize(100, 40)).toBe(10);
    expect(grantSize(5, 40)).toBe(5);
    expect(grantSize(100, 3)).toBe(1);
    expect(grantSize(100, 0)).toBe(0);
    expect(grantSize(1, 1)).toBe(1);
  });

  it("a fixed window never grants more than its limit, whatever is asked", () => {
    let state;
    let total = 0;
    for (let i = 0; i < 50; i++) {
      const r = leaseWindow(state, req(fixed, 7), 1_000);
      state = r.state;
      total += r.reply.granted;
    }
    expect(total).toBe(10);
    const refused = leaseWindow(state, req(fixed, 1), 1_000).reply;
    expect(refused).toMatchObject({ granted: 0, remaining: 0, retryMs: 59_000, ttlMs: 59_000, window: 0 });
    // The next window starts afresh.
    expect(leaseWindow(state, req(fixed, 1), 60_000).reply.granted).toBe(1);
  });

  it("a sliding window weighs the previous window by its overlap", () => {
    let state = leaseWindow(undefined, req(sliding, 10), 0).state;
    for (let i = 0; i < 10; i++) state = leaseWindow(state, req(sliding, 10), 1).state;
    expect(state.cur).toBe(10);
    // 25% into the next window, 75% of the previous 10 still count: 2 fit.
    expect(usageWindow(state, sliding, 75_000)).toMatchObject({ used: 8, remaining: 2 });
    const r = leaseWindow(state, req(sliding, 1), 75_000);
    expect(r.reply.granted).toBe(1);
    // With 10 counted the previous window and 1 now, the next token is free once the weight drops to 0.8.
    const r2 = leaseWindow(r.state, req(sliding, 1), 75_000);
    expect(r2.reply.granted).toBe(1);
    const r3 = leaseWindow(r2.state, req(sliding, 1), 75_000);
    expect(r3.reply.granted).toBe(0);
    expect(r3.reply.retryMs).toBeGreaterThan(0);
    expect(75_000 + r3.reply.retryMs).toBeLessThanOrEqual(120_000);
  });

  it("a token bucket starts full, refills continuously and takes handed-back tokens", () => {
    const spec: LimitSpec = { algorithm: "token-bucket", limit: 10, windowMs: 10_000 };
    let { state, reply } = leaseBucket(undefined, req(spec, 100), 0);
    expect(reply.granted).toBe(2); // a quarter of 10, rounded down
    for (let i = 0; i < 20; i++) ({ state } = leaseBucket(state, req(spec, 100), 0));
    expect(Math.floor(state.tokens)).toBe(0);
    expect(leaseBucket(state, req(spec, 1), 0).reply.retryMs).toBe(1000);
    // One token per second comes back.
    expect(leaseBucket(state, req(spec, 1), 1_000).reply.granted).toBe(1);
    expect(leaseBucket(state, req(spec, 1, 3), 0).reply.granted).toBe(1);
  });

  it("calendar periods are UTC days, ISO weeks (Monday) and months", () => {
    const t = Date.UTC(2026, 10, 30, 15, 0); // Monday 30 Nov 2026
    expect(periodBounds("day", t)).toEqual({ start: Date.UTC(2026, 10, 30), end: Date.UTC(2026, 11, 1) });
    expect(periodBounds("week", t)).toEqual({ start: Date.UTC(2026, 10, 30), end: Date.UTC(2026, 11, 7) });
    expect(periodBounds("week", Date.UTC(2026, 11, 6, 23, 59))).toEqual({ start: Date.UTC(2026, 10, 30), end: Date.UTC(2026, 11, 7) });
    expect(periodBounds("month", t)).toEqual({ start: Date.UTC(2026, 10, 1), end: Date.UTC(2026, 11, 1) });
    expect(periodBounds("month", Date.UTC(2026, 11, 31, 23, 59))).toEqual({ start: Date.UTC(2026, 11, 1), end: Date.UTC(2027, 0, 1) });
  });

  it("buckets IPv6 clients per /64 and keeps IPv4 addresses whole", () => {
    expect(ipBucket("2001:db8:1:2:aaaa::1")).toBe(ipBucket("2001:db8:1:2:ffff::9"));
    expect(ipBucket("2001:db8:1:2::1")).not.toBe(ipBucket("2001:db8:1:3::1"));
    expect(ipBucket("203.0.113.7")).toBe("ip:203.0.113.7");
    expect(ipBucket(undefined)).toBe("ip:unknown");
  });

  it("builds the bucket from the parsed address, so no other spelling of an address is another subject", () => {
    for (const same of ["::ffff:203.0.113.7", "::FFFF:cb00:7107", "0:0:0:0:0:ffff:203.0.113.7", "[::ffff:203.0.113.7]"]) {
      expect(ipBucket(same), same).toBe("ip:203.0.113.7");
    }
    const v6 = ipBucket("2001:db8:a:b::1");
    for (const same of ["2001:0DB8:000A:000B:0:0:0:2", "[2001:db8:a:b::3]", "2001:db8:a:b::4%eth0", "2001:db8:a:b::192.0.2.1"]) expect(ipBucket(same), same).toBe(v6);
    expect(ipBucket("not an ip")).toBe("ip:invalid");
  });

  it("property: any IPv4 or IPv6 address, however written, lands in one bucket", () => {
    fc.assert(
      fc.property(fc.ipV4(), (ip) => {
        for (const same of [`::ffff:${ip}`, `::FFFF:${ip}`, `[::ffff:${ip}]`, ` ${ip}`.trim()]) expect(ipBucket(same)).toBe(ipBucket(ip));
        expect(ipBucket(ip)).toMatch(/^ip:\d+\.\d+\.\d+\.\d+$/);
      }),
    );
    fc.assert(
      fc.property(fc.ipV6(), fc.integer({ min: 0, max: 0xffff }), (ip, low) => {
        for (const same of [ip.toUpperCase(), `[${ip}]`, `${ip}%eth0`]) expect(ipBucket(same)).toBe(ipBucket(ip));
        expect(ipBucket(ip)).not.toBe("ip:invalid");
        // Changing the last group stays inside the /64 (unless it is an IPv4-mapped address, counted whole).
        const bucket = ipBucket(ip);
        if (bucket.startsWith("ip6:")) {
          const expanded = ip.includes("::") || ip.includes(".") ? null : ip.split(":");
          if (expanded) expect(ipBucket([...expanded.slice(0, 7), low.toString(16)].join(":"))).toBe(bucket);
        }
      }),
    );
  });
});

describe("lease book (one isolate)", () => {
  /**
   * A backend that applies the real counting rules in memory and counts its calls. Its clock
   * stands still at the start of a window, so a burst never straddles a window edge (where a
   * fixed window would start a new count), whatever the wall clock says.
   */
  function memoryBackend(spec: LimitSpec, delayMs = 1) {
    let state: ReturnType<typeof leaseWindow>["state"] | undefined;
    const calls = { n: 0 };
    const call = async (want: number): Promise<LeaseReply> => {
      calls.n++;
      await new Promise((r) => setTimeout(r, delayMs));
      const r = leaseWindow(state, req(spec, want), 0);
      state = r.state;
      return r.reply;
    };
    return { call, calls };
  }

  it("admits exactly the limit from a concurrent burst, with one backend call per lease", async () => {
    const spec: LimitSpec = { algorithm: "fixed-window", limit: 100, windowMs: 3_600_000 };
    const backend = memoryBackend(spec);
    const book = new LeaseBook();
    const decisions = await Promise.all(Array.from({ length: 400 }, () => book.acquire("s", spec, { leaseMax: 20, call: backend.call })));
    expect(decisions.filter((d) => d.allowed).length).toBe(100);
    // Leases of up to 20, shrinking near the end, plus one refused call: far fewer than 400.
    expect(backend.calls.n).toBeLessThan(30);
  });

  it("a failed lease call fails every request waiting on it; the subject backs off for NEGATIVE_TTL_MS without calling, then tries again", async () => {
    const spec: LimitSpec = { algorithm: "fixed-window", limit: 10, windowMs: 60_000 };
    const book = new LeaseBook();
    let fail = true;
    let calls = 0;
    const call = async (): Promise<LeaseReply> => {
      calls++;
      await new Promise((r) => setTimeout(r, 1));
      if (fail) throw new Error("down");
      return { granted: 1, remaining: 5, retryMs: 0, resetMs: 1000, ttlMs: 1000, window: 0 };
    };
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => book.acquire("s", spec, { leaseMax: 1, call })));
    expect(results.every((r) => r.status === "rejected")).toBe(true);
    expect(calls).toBe(1);
    fail = false;
    // Within the back-off: the fail mode at once, the backend not asked (it was down a moment ago).
    const backingOff = await book.acquire("s", spec, { leaseMax: 1, call }).catch((e: unknown) => e);
    expect(backingOff).toBeInstanceOf(LimiterUnavailableError);
    expect((backingOff as LimiterUnavailableError).reason).toBe("backing-off");
    expect(calls).toBe(1);
    await new Promise((r) => setTimeout(r, NEGATIVE_TTL_MS + 20));
    expect((await book.acquire("s", spec, { leaseMax: 1, call })).allowed).toBe(true);
    expect(calls).toBe(2);
  });

  it("a kept state spends leased tokens synchronously, and is re-fetched once the book drops it", async () => {
    const spec: LimitSpec = { algorithm: "fixed-window", limit: 100, windowMs: 3_600_000 };
    const backend = memoryBackend(spec);
    const book = new LeaseBook();
    const kept = book.stateFor("s", spec);
    const gen = book.generation;
    // Nothing held yet: the hot path declines and the lease path asks the backend once.
    expect(spendLeased(kept, Date.now())).toBe(false);
    expect((await book.acquireFrom(kept, { leaseMax: 10, call: backend.call })).allowed).toBe(true);
    for (let i = 0; i < 9; i++) expect(spendLeased(kept, Date.now())).toBe(true);
    expect(spendLeased(kept, Date.now())).toBe(false);
    expect(backend.calls.n).toBe(1);
    // Tokens are never spent past their lease's expiry.
    await book.acquireFrom(kept, { leaseMax: 10, call: backend.call });
    expect(spendLeased(kept, kept.expiresAt)).toBe(false);
    // An admin reset (forget) moves the generation: a caller holding the state must look it up again.
    expect(book.generation).toBe(gen);
    book.forget("s");
    expect(book.generation).not.toBe(gen);
    expect(book.stateFor("s", spec)).not.toBe(kept);
  });
});
