import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { expectProblem, originRecords, seedCaller, unique } from "../../test/helpers";
import { createApp } from "../../worker/app";
import { defineGateway } from "../../worker/gateway/config";
import { authorize } from "../authorize";
import { keyAuth } from ".";

/** A tiny gateway around one route, with the given key-auth options. */
function appWith(options: Parameters<typeof keyAuth>[0]) {
  const app = createApp(
    defineGateway({
      upstreams: { echo: { url: env.TEST_ORIGIN_URL } },
      plugins: [keyAuth(options), authorize()],
      routes: [{ name: "r", path: "/r/*", upstream: "echo", permission: "echo:read" }],
    }),
  );
  return (path: string, headers: Record<string, string>) => app.request(`https://gw.test${path}`, { headers }, env);
}

describe("key-auth plugin", () => {
  it("by default accepts Authorization: Bearer and X-API-Key and hides both from the origin", async () => {
    const { key } = await seedCaller();
    const call = appWith(undefined);
    const m = unique("ka");
    expect((await call(`/r/${m}-1`, { authorization: `Bearer ${key}` })).status).toBe(200);
    expect((await call(`/r/${m}-2`, { "x-api-key": key })).status).toBe(200);
    const recs = await originRecords(m);
    expect(recs).toHaveLength(2);
    for (const r of recs) {
      expect(r.headers).not.toHaveProperty("x-api-key");
      expect(r.headers).not.toHaveProperty("authorization");
    }
  });

  it("headers: [\"x-api-key\"] ignores the Authorization header", async () => {
    const { key } = await seedCaller();
    const call = appWith({ headers: ["x-api-key"] });
    await expectProblem(await call(`/r/${unique("ka")}`, { authorization: `Bearer ${key}` }), 401, "KEY_INVALID");
    expect((await call(`/r/${unique("ka")}`, { "x-api-key": key })).status).toBe(200);
  });

  it("hideCredentials: false forwards the key header (for origins that check it themselves)", async () => {
    const { key } = await seedCaller();
    const call = appWith({ headers: ["x-api-key"], hideCredentials: false });
    const m = unique("ka-show");
    expect((await call(`/r/${m}`, { "x-api-key": key })).status).toBe(200);
    expect((await originRecords(m))[0]!.headers["x-api-key"]).toBe(key);
  });

  it("refuses two different keys in one request", async () => {
    const a = await seedCaller();
    const b = await seedCaller();
    const m = unique("ka-two");
    await expectProblem(await appWith(undefined)(`/r/${m}`, { authorization: `Bearer ${a.key}`, "x-api-key": b.key }), 401, "KEY_INVALID");
    expect(await originRecords(m)).toHaveLength(0);
  });
});
