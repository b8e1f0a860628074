import { describe, expect, it } from "vitest";
import { PluginConfigError } from "../../worker/gateway/plugin";
import { leasePeriod, usagePeriod } from "../../worker/limits/algorithms";
import { limitRegistry } from "../../worker/limits/engine";
import type { LimitSpec } from "../../worker/limits/types";
import { quota } from ".";

describe("quota options", () => {
  it("fails at config load, naming the field", () => {
    expect(() => quota({ limit: 10, period: "year" as never })).toThrow(/period/);
    expect(() => quota({ limit: 1.5 })).toThrow(PluginConfigError);
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
    expect(usagePeriod(state, spec(0), 30)).toEqual({ used: 1, remaining: 9, resetMs: 970 });
    expect(usagePeriod(state, spec(1000), 1010)).toEqual({ used: 0, remaining: 10, resetMs: 990 });
  });
});
