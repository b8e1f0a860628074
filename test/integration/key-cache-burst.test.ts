import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { authorize } from "../../plugins/authorize";
import { keyAuth } from "../../plugins/key-auth";
import { createApp } from "../../worker/app";
import { generateApiKey } from "../../worker/lib/api-key";
import { defineGateway } from "../../worker/gateway/config";
import { testUpstreams } from "../fixtures/upstreams";
import { expectProblem, originRecords, readToEnd, seedCaller, unique } from "../helpers";

/** The real D1, with a log of the SQL each statement ran (drizzle prepares every query). */
function recordingD1(db: D1Database, log: string[]): D1Database {
  return new Proxy(db, {
    get(target, prop) {
      if (prop === "prepare") return (sql: string) => (log.push(sql), target.prepare(sql));
      const v = Reflect.get(target, prop);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/** The identity read (key ⋈ user ⋈ roles by key hash): one per key resolution that misses. */
const isIdentityRead = (sql: string) => /from "api_keys"/.test(sql) && /"api_keys"\."hash" = \?/.test(sql);

describe("key cache: a burst of misses costs one D1 read", () => {
  const app = createApp(
    defineGateway({ upstreams: testUpstreams, plugins: [keyAuth(), authorize()], routes: [{ name: "burst", path: "/burst/*", upstream: "echo", permission: "echo:read" }] }),
  );
  const log: string[] = [];
  const burstEnv = { ...env, DB: recordingD1(env.DB, log) };

  /** Every promise a request handed to `waitUntil`, by request. */
  let kept: number[] = [];
  async function call(path: string, key: string): Promise<Response> {
    const ctx = createExecutionContext();
    const i = kept.push(0) - 1;
    const waitUntil = ctx.waitUntil.bind(ctx);
    ctx.waitUntil = (p) => ((kept[i] = kept[i]! + 1), waitUntil(p));
    const res = await readToEnd(await app.fetch(new Request(`https://gateway.test${path}`, { headers: { authorization: `Bearer ${key}` } }), burstEnv, ctx));
    await waitOnExecutionContext(ctx);
    return res;
  }

  it("12 concurrent requests with a key this isolate has never seen: one identity read, all served", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("burst");
    log.length = 0;
    kept = [];
    const responses = await Promise.all(Array.from({ length: 12 }, (_, i) => call(`/burst/${m}-${i}`, key)));
    expect(responses.map((r) => r.status)).toEqual(Array(12).fill(200));
    expect((await originRecords(m)).length).toBe(12);
    expect(log.filter(isIdentityRead)).toHaveLength(1);
    // The request that started the shared read handed it to waitUntil (so the others get their
    // answer even if its client goes away); one request also records the key's use (last_used_at,
    // no audit plugin here). Nothing else on this route uses waitUntil.
    expect(kept.reduce((a, b) => a + b, 0)).toBe(2);
    // Warm now: the next request reads nothing.
    expect((await call(`/burst/${m}-warm`, key)).status).toBe(200);
    expect(log.filter(isIdentityRead)).toHaveLength(1);
  });

  it("8 concurrent requests with an unknown (well-formed) key: one read, all refused, none forwarded", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const unknownKey = generateApiKey().key; // well-formed, checksum and all, but in no row
    const m = unique("burst-unknown");
    log.length = 0;
    const responses = await Promise.all(Array.from({ length: 8 }, (_, i) => call(`/burst/${m}-${i}`, unknownKey)));
    for (const r of responses) await expectProblem(r, 401, "KEY_INVALID");
    expect(await originRecords(m)).toEqual([]);
    expect(log.filter(isIdentityRead)).toHaveLength(1);
    expect((await call(`/burst/${unique("burst-known")}`, key)).status).toBe(200);
  });
});
