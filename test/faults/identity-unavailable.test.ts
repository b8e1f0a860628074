import { env } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { createApp } from "../../worker/app";
import { generateApiKey } from "../../worker/lib/api-key";
import gateway from "../fixtures/gateway.test.config";
import { expectProblem, originRecords, seedCaller, unique } from "../helpers";

/**
 * The real D1 binding, wrapped so every statement whose SQL matches `failWhen` throws the way
 * D1 does when it is unreachable. Everything else goes to the real database.
 */
function brokenDb(failWhen: RegExp): D1Database {
  const real = env.DB;
  const fail = () => Promise.reject(new Error("D1_ERROR: Network connection lost."));
  return new Proxy(real, {
    get(target, prop) {
      if (prop === "prepare") {
        return (sql: string) => {
          const stmt = target.prepare(sql);
          if (!failWhen.test(sql)) return stmt;
          return new Proxy(stmt, {
            get(s, p) {
              if (p === "bind") return (...args: unknown[]) => brokenStatement(s.bind(...args));
              if (p === "all" || p === "raw" || p === "first" || p === "run") return fail;
              const v = Reflect.get(s, p, s);
              return typeof v === "function" ? v.bind(s) : v;
            },
          });
        };
      }
      if (prop === "batch" || prop === "exec") return fail;
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  function brokenStatement(stmt: D1PreparedStatement): D1PreparedStatement {
    return new Proxy(stmt, {
      get(s, p) {
        if (p === "all" || p === "raw" || p === "first" || p === "run") return fail;
        if (p === "bind") return (...args: unknown[]) => brokenStatement(s.bind(...args));
        const v = Reflect.get(s, p, s);
        return typeof v === "function" ? v.bind(s) : v;
      },
    });
  }
}

// A separate app (same gateway config) so the broken binding reaches it through `app.request`.
// Its env object differs from the pool's, but the isolate key cache is shared: each test uses a
// key that has never been resolved, so resolution must go to D1.
const app = createApp(gateway);
const call = (path: string, key: string, DB: D1Database) =>
  app.request(`https://gateway.test${path}`, { headers: { authorization: `Bearer ${key}` } }, { ...env, DB });

describe("D1 failing during key resolution fails closed", () => {
  it.each([
    ["the key lookup", /api_keys/],
    ["the role lookup after the key was found", /user_roles/],
  ])("D1 throwing in %s gives 503 IDENTITY_UNAVAILABLE and nothing reaches the origin", async (_what, failWhen) => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const { key } = await seedCaller({ permissions: ["echo:read"] });
      const m = unique("d1down");
      const res = await call(`/echo/${m}`, key, brokenDb(failWhen));
      const body = await expectProblem(res, 503, "IDENTITY_UNAVAILABLE");
      expect(res.headers.get("retry-after")).toBe("1");
      expect(JSON.stringify(body)).not.toContain(key);
      expect(await originRecords(m)).toHaveLength(0);
      // Logged for the operator, without the key or its hash.
      const logged = errors.mock.calls.map((c) => c.join(" ")).join("\n");
      expect(logged).toContain("key resolution failed");
      expect(logged).not.toContain(key);
      expect(logged).not.toMatch(/[0-9a-f]{64}/);

      // The failure was not cached: once D1 is back, the same key works at once.
      const ok = await call(`/echo/${m}-after`, key, env.DB);
      expect(ok.status).toBe(200);
      expect(await originRecords(`${m}-after`)).toHaveLength(1);
    } finally {
      errors.mockRestore();
    }
  });

  it("a well-formed key during an outage is 503, not 401, and is not remembered as unknown", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const m = unique("d1down-unknown");
      // Unknown to D1: the gateway cannot know that while D1 is down, so it must not say 401.
      await expectProblem(await call(`/echo/${m}`, generateApiKey().key, brokenDb(/api_keys/)), 503, "IDENTITY_UNAVAILABLE");
      const { key } = await seedCaller({ permissions: ["echo:read"] });
      await expectProblem(await call(`/echo/${m}`, key, brokenDb(/api_keys/)), 503, "IDENTITY_UNAVAILABLE");
      // Not negatively cached: the real key resolves right after.
      expect((await call(`/echo/${m}`, key, env.DB)).status).toBe(200);
      expect(await originRecords(m)).toHaveLength(1);
    } finally {
      errors.mockRestore();
    }
  });

  it("malformed and bad-checksum keys are refused with 401 without touching D1, even during an outage", async () => {
    const m = unique("d1down-bad");
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const badChecksum = key.slice(0, -1) + (key.endsWith("A") ? "B" : "A");
    for (const k of ["garbage", badChecksum]) await expectProblem(await call(`/echo/${m}`, k, brokenDb(/.*/)), 401, "KEY_INVALID");
    expect(await originRecords(m)).toHaveLength(0);
  });

  it("a key already cached keeps working during an outage until its TTL (the documented bound)", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("d1down-cached");
    expect((await call(`/echo/${m}-warm`, key, env.DB)).status).toBe(200);
    const res = await call(`/echo/${m}`, key, brokenDb(/api_keys|user_roles/));
    // Served from the isolate cache (fresh for KEY_CACHE_TTL_SECONDS = 1 s in tests). The
    // last_used_at write may fail in the background; that never changes the response.
    expect(res.status).toBe(200);
  });
});
