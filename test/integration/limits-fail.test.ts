import { describe, expect, it } from "vitest";
import { expectProblem, gw, originRecords, seedCaller, unique } from "../helpers";

// Generous: the limits under test time out after 300 ms; the stalled backends would take 30 s.
const BOUND_MS = 5_000;

describe("backend down → the declared fail mode, within the bounded timeout", () => {
  it.each([
    ["fail-do-stall-open", "Durable Object that never answers"],
    ["fail-up-down-open", "Upstash that refuses connections"],
    ["fail-up-stall-open", "Upstash that never answers"],
  ])("%s: a fail-open rate limit admits (%s)", async (route) => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique(route);
    const started = Date.now();
    const res = await gw(`/${route}/${marker}`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(200);
    await res.text();
    expect(Date.now() - started).toBeLessThan(BOUND_MS);
    expect((await originRecords(marker)).length).toBe(1);
    // Still a limited response: which limit applies, but no guessed Remaining or Reset.
    expect(res.headers.get("ratelimit-limit")).toBe("5");
    expect(res.headers.get("ratelimit-policy")).toBe("5;w=60");
    expect(res.headers.get("ratelimit-remaining")).toBeNull();
    expect(res.headers.get("ratelimit-reset")).toBeNull();
  });

  it.each([
    ["fail-do-stall-closed", "Durable Object that never answers"],
    ["fail-do-broken-closed", "Durable Object that throws"],
    ["fail-up-down-closed", "Upstash that refuses connections"],
    ["fail-up-stall-closed", "Upstash that never answers"],
  ])("%s: a fail-closed quota answers 503 LIMITER_UNAVAILABLE and forwards nothing (%s)", async (route) => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique(route);
    const started = Date.now();
    const res = await gw(`/${route}/${marker}`, { headers: { authorization: `Bearer ${key}` } });
    const body = await expectProblem(res, 503, "LIMITER_UNAVAILABLE");
    expect(body.detail).toContain(route);
    expect(res.headers.get("retry-after")).toBe("1");
    expect(Date.now() - started).toBeLessThan(BOUND_MS);
    expect((await originRecords(marker)).length).toBe(0);
  });
});
