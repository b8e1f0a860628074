import { env } from "cloudflare:test";
import { createApp } from "../../worker/app";
import { defineGateway } from "../../worker/gateway/config";
import { describe, expect, it } from "vitest";
import { admin, expectProblem, json, originRecords, seedCaller, testGateway, unique } from "../../test/helpers";
import { authorize } from "../authorize";
import { keyAuth } from "./index";

const fetchGw = testGateway({
  plugins: [keyAuth(), authorize()],
  routes: [
    { name: "ka-default", path: "/ka/*", upstream: "echo", permission: "echo:read" },
    { name: "ka-x-api-key", path: "/ka-x/*", upstream: "echo", permission: "echo:read", plugins: [keyAuth({ headers: ["x-api-key"] })] },
    { name: "ka-visible", path: "/ka-visible/*", upstream: "echo", permission: "echo:read", plugins: [keyAuth({ hideCredentials: false })] },
  ],
});

describe("key-auth", () => {
  it("accepts a key as Authorization: Bearer or X-API-Key and never forwards it", async () => {
    const { key, user, keyId } = await seedCaller();
    for (const headers of [{ authorization: `Bearer ${key}` }, { "x-api-key": key }] as Record<string, string>[]) {
      const marker = unique("ka-ok");
      const res = await fetchGw(`/ka/${marker}`, { headers });
      expect(res.status).toBe(200);
      const [rec] = await originRecords(marker);
      expect(rec!.headers["x-api-key"]).toBeUndefined();
      // The origin sees its own injected credential, not the client's key.
      expect(rec!.headers.authorization).toBe("Bearer origin-secret-value-7f3a9c");
      expect(rec!.headers["x-portcullis-user-id"]).toBe(user.id);
      expect(rec!.headers["x-portcullis-key-id"]).toBe(keyId);
      expect(JSON.stringify(rec)).not.toContain(key);
    }
  });

  it("refuses missing, malformed, unknown and conflicting keys with one 401 body and nothing forwarded", async () => {
    const { key } = await seedCaller();
    const other = (await seedCaller()).key;
    const cases: Record<string, string>[] = [
      {},
      { authorization: "Bearer not-a-key" },
      { authorization: `Basic ${btoa("a:b")}` },
      { authorization: `Bearer ${key.slice(0, -1)}${key.endsWith("A") ? "B" : "A"}` },
      { "x-api-key": "pcl_000000000000000000000000000000" },
      { authorization: `Bearer ${key}`, "x-api-key": other },
    ];
    for (const headers of cases) {
      const marker = unique("ka-bad");
      const res = await fetchGw(`/ka/${marker}`, { headers });
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="portcullis"');
      const body = await expectProblem(res, 401, "KEY_INVALID");
      expect(body.detail).toBe("A valid API key is required.");
      expect(await originRecords(marker)).toEqual([]);
    }
  });

  it("refuses a revoked key", async () => {
    const { key, keyId } = await seedCaller();
    expect((await admin("POST", `/keys/${keyId}/revoke`, {})).status).toBe(200);
    const marker = unique("ka-revoked");
    await expectProblem(await fetchGw(`/ka/${marker}`, { headers: { "x-api-key": key } }), 401, "KEY_INVALID");
    expect(await originRecords(marker)).toEqual([]);
  });

  it("headers: only the listed header is read", async () => {
    const { key } = await seedCaller();
    await expectProblem(await fetchGw(`/ka-x/${unique("m")}`, { headers: { authorization: `Bearer ${key}` } }), 401, "KEY_INVALID");
    expect((await fetchGw(`/ka-x/${unique("m")}`, { headers: { "x-api-key": key } })).status).toBe(200);
  });

  it("hideCredentials: false forwards X-API-Key (the origin credential still wins on Authorization)", async () => {
    const { key } = await seedCaller();
    const marker = unique("ka-visible");
    expect((await fetchGw(`/ka-visible/${marker}`, { headers: { "x-api-key": key } })).status).toBe(200);
    const [rec] = await originRecords(marker);
    expect(rec!.headers["x-api-key"]).toBe(key);
    expect((await json(await fetchGw(`/ka/${unique("m")}`, { headers: { "x-api-key": key } }))).headers["x-api-key"]).toBeUndefined();
  });
});

// ── from the core suite: a tiny gateway per case, via app.request ──
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

  it("hides a proxy key sent in a header the route does not read; other values there still pass", async () => {
    const { key } = await seedCaller();
    const other = (await seedCaller()).key;
    const m = unique("ka-unread");
    // The origin must never learn a key: with it, anyone there could call the gateway as that user.
    expect((await appWith({ headers: ["x-api-key"] })(`/r/${m}-1`, { "x-api-key": key, authorization: `Bearer ${other}` })).status).toBe(200);
    expect((await appWith({ headers: ["authorization"] })(`/r/${m}-2`, { authorization: `Bearer ${key}`, "x-api-key": other })).status).toBe(200);
    // A credential of the origin's own (not a proxy key) in the unread header is still forwarded.
    expect((await appWith({ headers: ["x-api-key"] })(`/r/${m}-3`, { "x-api-key": key, authorization: "Bearer origin-side-token" })).status).toBe(200);
    const recs = await originRecords(m);
    expect(recs).toHaveLength(3);
    expect(JSON.stringify(recs)).not.toContain(key);
    expect(JSON.stringify(recs)).not.toContain(other);
    expect(recs.find((r) => r.url.includes(`${m}-3`))!.headers.authorization).toBe("Bearer origin-side-token");
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
