// A Durable Object counter deletes its storage once it no longer matters (as Upstash keys expire):
// otherwise every subject ever limited — every client IPv6 /64 of a per-IP limit — kept one for ever.
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { periodBounds } from "../../worker/limits/algorithms";
import { durableObjectBackend, type LimiterDurableObject } from "../../worker/limits/durable-object";
import type { LimitSpec } from "../../worker/limits/types";
import { unique } from "../helpers";

const ns = env.LIMITER as unknown as DurableObjectNamespace<LimiterDurableObject>;
const backend = durableObjectBackend(ns);
const stubOf = (key: string) => ns.get(ns.idFromName(key));
const stored = (key: string) => runInDurableObject(stubOf(key), (_o, state) => [...state.storage.kv.list()].length);
const alarmOf = (key: string) => runInDurableObject(stubOf(key), (_o, state) => state.storage.getAlarm());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const lease = (key: string, spec: LimitSpec, want = 1) => backend.lease(key, { spec, want, give: 0, giveWindow: 0 });

describe("limiter Durable Object storage is deleted once its counter is stale", () => {
  it("a 1 s window: stored while it counts, gone after the alarm two windows (plus one of slack) on; a new lease then counts afresh", async () => {
    const key = unique("stale-window");
    const spec: LimitSpec = { algorithm: "sliding-window", limit: 5, windowMs: 1_000 };
    expect((await lease(key, spec)).granted).toBe(1);
    expect(await stored(key)).toBeGreaterThan(0);
    const at = await alarmOf(key);
    expect(at).not.toBeNull();
    expect(at! - Date.now()).toBeLessThanOrEqual(3_000);
    await sleep(Math.max(0, at! - Date.now()) + 100);
    // workerd may have run it already; if not, run it now (it is due).
    await runDurableObjectAlarm(stubOf(key));
    expect(await stored(key)).toBe(0);
    expect(await alarmOf(key)).toBeNull();
    expect(await lease(key, spec)).toMatchObject({ granted: 1, remaining: 4 });
  });

  it("a quota: kept to a day past its period; an alarm run early deletes nothing and is set again", async () => {
    const key = unique("stale-quota");
    const now = Date.now();
    const { start, end } = periodBounds("day", now);
    const spec: LimitSpec = { algorithm: "period", limit: 100, windowMs: end - start, periodStart: start, periodEnd: end };
    expect((await lease(key, spec, 10)).granted).toBe(10);
    expect(await alarmOf(key)).toBe(end + 86_400_000);
    expect(await runDurableObjectAlarm(stubOf(key))).toBe(true);
    expect((await backend.usage(key, spec)).used).toBe(10);
    expect(await alarmOf(key)).toBe(end + 86_400_000);
  });
});
