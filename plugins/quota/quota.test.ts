import { describe, expect, it } from "vitest";
import { defineGateway, GatewayConfigError } from "../../worker/gateway/config";
import { leaseBucket, leasePeriod, resetBucket, resetPeriod, usagePeriod } from "../../worker/limits/algorithms";
import { limitRegistry } from "../../worker/limits/engine";
import type { LimitSpec } from "../../worker/limits/types";
import { quota } from ".";

describe("quota options", () => {
  // The factory records invalid options; defineGateway refuses to load and names route, plugin and field.
  const load = (plugin: ReturnType<typeof quota>) => () =>
    defineGateway({ upstreams: { api: { url: "https://api.example" } }, routes: [{ name: "r", path: "/r/*", upstream: "api", plugins: [plugin] }] });
  it("fails at config load, naming the field", () => {
    expect(load(quota({ limit: 10, period: "year" as never }))).toThrow(/routes\[0\]\.plugins\[0\]\.period \(route "r", plugin "quota"\)/);
    expect(load(quota({ limit: 1.5 }))).toThrow(GatewayConfigError);
    expect(load(quota({ limit: 1.5 }))).toThrow(/limit/);
  });

  it("defaults: per user, per month, fail closed", () => {
    expect(limitRegistry.get(quota({ limit: 1000 }).handler)).toMatchObject({ kind: "quota", name: "quota", period: "month", by: ["user"], failMode: "closed", dryRun: false });
  });
});

describe("period counting", () => {
  const spec = (start: number): LimitSpec => ({ algorithm: "period", limit: 10, windowMs: 1000, periodStart: start, periodEnd: start + 1000 });

  it("counts up to the limit, takes back unspent units of the same period only, and restarts with a new period", () => {
    let { state, reply } = leasePeriod(undefined, { spec: spec(0), want: 100, give: 0, giveWindow: 0 }, 10);
    expect(reply).toMatchObject({ granted: 2, remaining: 8, window: 0 });
    ({ state, reply } = leasePeriod(state, { spec: spec(0), want: 1, give: 2, giveWindow: 0 }, 20));
    expect(state.count).toBe(1);
    // Units handed back from another period are ignored.
    ({ state } = leasePeriod(state, { spec: spec(0), want: 0, give: 5, giveWindow: 999 }, 20));
    expect(state.count).toBe(1);
    // The usage names its counter as leases do (the period start, never reset): the admin status
    // takes off only tokens held from that counter.
    expect(usagePeriod(state, spec(0), 30)).toEqual({ used: 1, remaining: 9, resetMs: 970, window: 0 });
    expect(usagePeriod(state, spec(1000), 1010)).toEqual({ used: 0, remaining: 10, resetMs: 990, window: 1000 });
  });

  it("an admin reset starts a new generation: units leased before it are not credited to the new count", () => {
    let { state, reply } = leasePeriod(undefined, { spec: spec(0), want: 2, give: 0, giveWindow: 0 }, 10);
    const before = reply.window;
    state = resetPeriod(state, spec(0), 20);
    expect(state.count).toBe(0);
    ({ state, reply } = leasePeriod(state, { spec: spec(0), want: 100, give: 0, giveWindow: 0 }, 21));
    expect(reply.window).not.toBe(before);
    // Handed back under the old generation: ignored. Under the current one: taken back.
    expect(leasePeriod(state, { spec: spec(0), want: 0, give: 2, giveWindow: before }, 22).state.count).toBe(state.count);
    expect(leasePeriod(state, { spec: spec(0), want: 0, give: 2, giveWindow: reply.window }, 22).state.count).toBe(state.count - 2);
    // Two resets in the same millisecond are still two generations.
    expect(resetPeriod(resetPeriod(state, spec(0), 23), spec(0), 23).gen).toBeGreaterThan(resetPeriod(state, spec(0), 23).gen!);
  });
});

describe("token bucket reset", () => {
  it("refills the bucket as a new generation: tokens leased before the reset are not credited back", () => {
    const spec: LimitSpec = { algorithm: "token-bucket", limit: 10, windowMs: 3_600_000 };
    let { state, reply } = leaseBucket(undefined, { spec, want: 2, give: 0, giveWindow: 0 }, 1_000);
    const before = reply.window;
    state = resetBucket(state, spec, 2_000);
    expect(state.tokens).toBe(10);
    for (let i = 0; i < 10; i++) ({ state, reply } = leaseBucket(state, { spec, want: 1, give: 0, giveWindow: 0 }, 2_000));
    expect(Math.floor(state.tokens)).toBe(0);
    expect(leaseBucket(state, { spec, want: 1, give: 2, giveWindow: before }, 2_000).reply.granted).toBe(0);
    expect(leaseBucket(state, { spec, want: 1, give: 2, giveWindow: reply.window }, 2_000).reply.granted).toBe(1);
  });
});
