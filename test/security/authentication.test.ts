import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { createApp } from "../../worker/app";
import { generateApiKey } from "../../worker/lib/api-key";
import gateway from "../fixtures/gateway.test.config";
import { admin, expectProblem, gw, originRecords, seedCaller, unique } from "../helpers";
import { raw, rawOriginRecords, seedRawCaller, sendRaw } from "./raw";

/** Everything a client can read from a refusal, minus the per-request id. */
async function refusalShape(res: Response): Promise<string> {
  const headers = [...res.headers].filter(([k]) => k !== "x-request-id");
  const body = (await res.text()).replace(/req_[0-9a-f]{32}/g, "req_ID");
  return JSON.stringify({ status: res.status, headers, body });
}

describe("every refused key looks the same", () => {
  let shapes: Map<string, string>;
  const m = unique("auth401");

  beforeAll(async () => {
    const active = await seedCaller({ permissions: ["echo:read"] });
    const revoked = await seedCaller({ permissions: ["echo:read"] });
    expect((await admin("POST", `/keys/${revoked.keyId}/revoke`)).status).toBe(200);
    const expired = await seedCaller({ permissions: ["echo:read"] });
    await env.DB.prepare("UPDATE api_keys SET expires_at = ? WHERE id = ?").bind(Date.now() - 1000, expired.keyId).run();
    const disabled = await seedCaller({ permissions: ["echo:read"] });
    expect((await admin("PATCH", `/users/${disabled.user.id}`, { status: "disabled" })).status).toBe(200);
    const rotated = await seedCaller({ permissions: ["echo:read"] });
    expect((await admin("POST", `/keys/${rotated.keyId}/rotate`, { gracePeriodSeconds: 0 })).status).toBe(201);
    const userExpired = await seedCaller({ permissions: ["echo:read"] });
    await env.DB.prepare("UPDATE proxy_users SET expires_at = ? WHERE id = ?").bind(Date.now() - 1000, userExpired.user.id).run();
    // Admin mutations purge only the serving isolate's cache; the direct D1 edits above need the TTL.
    await new Promise((r) => setTimeout(r, 1100));
    const badChecksum = active.key.slice(0, -1) + (active.key.endsWith("A") ? "B" : "A");
    const cases: Record<string, Record<string, string>> = {
      missing: {},
      empty: { authorization: "" },
      "bearer only": { authorization: "Bearer " },
      "other scheme": { authorization: `Basic ${btoa(`x:${active.key}`)}` },
      malformed: { authorization: "Bearer not-a-key" },
      "bad checksum": { authorization: `Bearer ${badChecksum}` },
      unknown: { authorization: `Bearer ${generateApiKey().key}` },
      revoked: { authorization: `Bearer ${revoked.key}` },
      expired: { authorization: `Bearer ${expired.key}` },
      "user disabled": { authorization: `Bearer ${disabled.key}` },
      "user expired": { authorization: `Bearer ${userExpired.key}` },
      "rotated out": { authorization: `Bearer ${rotated.key}` },
      "two different keys": { authorization: `Bearer ${active.key}`, "x-api-key": generateApiKey().key },
      "key with trailing NUL-ish junk": { "x-api-key": `${active.key}\u0001` },
      "very long": { authorization: `Bearer ${"A".repeat(8000)}` },
    };
    shapes = new Map();
    for (const [name, headers] of Object.entries(cases)) shapes.set(name, await refusalShape(await gw(`/echo/${m}`, { headers })));
    // Sanity: the active key does work on the same path.
    expect((await gw(`/echo/${m}-ok`, { headers: { authorization: `Bearer ${active.key}` } })).status).toBe(200);
  });

  it("status, headers and body (but the request id) are byte-identical for every reason", () => {
    const [first, ...rest] = [...shapes.values()];
    expect(JSON.parse(first!).status).toBe(401);
    expect(first).toContain("KEY_INVALID");
    for (const [name, shape] of shapes) expect(shape, name).toBe(first);
    expect(rest.length).toBeGreaterThan(10);
  });

  it("none of them reached the origin", async () => {
    expect(await originRecords(`/${m}`).then((r) => r.filter((x) => !x.url.includes("-ok")))).toHaveLength(0);
  });
});

describe("what key checks cost", () => {
  /** The real D1 binding, counting every statement prepared through it. */
  function countingDb() {
    let statements = 0;
    const db = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "prepare") return (sql: string) => (statements++, target.prepare(sql));
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    return { db, count: () => statements };
  }
  const app = createApp(gateway);

  it("malformed and bad-checksum keys are refused without a single D1 query", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const flipped = key.slice(0, 10) + (key[10] === "a" ? "b" : "a") + key.slice(11);
    const { db, count } = countingDb();
    for (const k of ["garbage", "pcl_short", flipped, key.slice(0, -1) + "0", `${key}x`]) {
      await expectProblem(await app.request(`https://gateway.test/echo/${unique("cost")}`, { headers: { authorization: `Bearer ${k}` } }, { ...env, DB: db }), 401, "KEY_INVALID");
    }
    expect(count()).toBe(0);
  });

  it("an unknown but well-formed key costs one D1 query, then is remembered (negative cache)", async () => {
    const { db, count } = countingDb();
    const k = generateApiKey().key;
    for (let i = 0; i < 3; i++) await expectProblem(await app.request(`https://gateway.test/echo/x`, { headers: { authorization: `Bearer ${k}` } }, { ...env, DB: db }), 401, "KEY_INVALID");
    expect(count()).toBe(1);
  });
});

describe("where a key may (not) be presented", () => {
  it("a key in the query string is not accepted", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("qkey");
    for (const q of ["api_key", "apikey", "key", "token", "access_token"]) {
      await expectProblem(await gw(`/echo/${m}?${q}=${key}`), 401, "KEY_INVALID");
    }
    expect(await originRecords(m)).toHaveLength(0);
  });

  it("a key in a cookie is not accepted", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    await expectProblem(await gw(`/echo/${unique("ckey")}`, { headers: { cookie: `api_key=${key}; token=${key}` } }), 401, "KEY_INVALID");
  });

  it("the admin API does not accept a proxy key, in any header", async () => {
    const { key } = await seedCaller({ permissions: ["*"] });
    for (const headers of [{ authorization: `Bearer ${key}` }, { "x-api-key": key }] as Record<string, string>[]) {
      await expectProblem(await gw("/admin/v1/users", { headers }), 401, "ADMIN_UNAUTHORIZED");
    }
  });

  it.each([
    ["token with a suffix", (t: string) => `Bearer ${t}x`],
    ["token prefix only", (t: string) => `Bearer ${t.slice(0, -1)}`],
    ["token twice", (t: string) => `Bearer ${t}, Bearer ${t}`],
    ["Basic scheme", (t: string) => `Basic ${t}`],
    ["no scheme", (t: string) => t],
  ])("the admin API refuses a near-miss admin token: %s", async (_n, make) => {
    await expectProblem(await gw("/admin/v1/users", { headers: { authorization: make(env.ADMIN_TOKEN) } }), 401, "ADMIN_UNAUTHORIZED");
  });
});

describe("admin ids", () => {
  it("404 is the same for an id that never existed and one that was deleted (only the id in `detail` differs)", async () => {
    const { user } = await seedCaller({ permissions: ["echo:read"] });
    expect((await admin("DELETE", `/users/${user.id}`)).status).toBe(200);
    const never = `usr_${user.id.slice(4, 13)}${"A".repeat(12)}`;
    const shape = async (id: string) => {
      const res = await gw(`/admin/v1/users/${id}`, { headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` } });
      return refusalShape(new Response((await res.text()).replaceAll(id, "ID"), res));
    };
    const deleted = await shape(user.id);
    expect(deleted).toContain("USER_NOT_FOUND");
    expect(await shape(never)).toBe(deleted);
  });
});

describe("duplicate credentials on the wire (raw socket)", () => {
  let key: string;
  beforeAll(async () => {
    key = await seedRawCaller(["echo:read"]);
  });

  it.each([
    ["the same key in two Authorization headers", (k: string) => [`Bearer ${k}`, `Bearer ${k}`]],
    ["a good key and garbage", (k: string) => [`Bearer ${k}`, "Bearer nope"]],
    ["garbage and a good key", (k: string) => ["Bearer nope", `Bearer ${k}`]],
    ["a good key and an empty header", (k: string) => [`Bearer ${k}`, ""]],
  ])("%s: 401, never forwarded", async (_n, values) => {
    const m = `dup${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    const res = await sendRaw(raw.direct, { target: `/echo/${m}`, headers: values(key).map((v) => ["Authorization", v] as [string, string]) });
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body).code).toBe("KEY_INVALID");
    expect(await rawOriginRecords(m)).toHaveLength(0);
  });

  it("one good Authorization header works (control)", async () => {
    const m = `dup-ok${Date.now().toString(36)}`;
    const res = await sendRaw(raw.direct, { target: `/echo/${m}`, headers: [["Authorization", `Bearer ${key}`]] });
    expect(res.status).toBe(200);
    expect(await rawOriginRecords(m)).toHaveLength(1);
  });
});
