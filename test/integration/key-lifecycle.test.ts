import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { hashApiKey } from "../../worker/lib/api-key";
import { admin, expectProblem, gw, json, originRecords, seedCaller, unique } from "../helpers";

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function call(key: string, marker: string) {
  return gw(`/echo/${marker}`, { headers: bearer(key) });
}

describe("key lifecycle", () => {
  it("create → use → rotate with grace → both work → old refused after grace → revoke → refused", async () => {
    const { keyId, key: oldKey } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("life");
    expect((await call(oldKey, `${m}-a`)).status).toBe(200);

    const rotated = await admin("POST", `/keys/${keyId}/rotate`, { gracePeriodSeconds: 2 });
    expect(rotated.status).toBe(201);
    const next = await json(rotated);
    expect(next.key).toMatch(/^pcl_/);
    expect(next.key).not.toBe(oldKey);
    expect(next.rotatedFrom).toBe(keyId);
    expect(next.previous).toMatchObject({ id: keyId, status: "active" });
    expect(Date.parse(next.previous.expiresAt) - Date.now()).toBeLessThanOrEqual(2_000);

    // Within the grace period both keys work; the new one works at once.
    expect((await call(next.key, `${m}-b`)).status).toBe(200);
    expect((await call(oldKey, `${m}-c`)).status).toBe(200);

    await sleep(2_200);
    await expectProblem(await call(oldKey, `${m}-d`), 401, "KEY_INVALID");
    expect((await call(next.key, `${m}-e`)).status).toBe(200);
    expect(await json(await admin("GET", `/keys/${keyId}`))).toMatchObject({ status: "expired" });

    const revoked = await admin("POST", `/keys/${next.id}/revoke`);
    expect(revoked.status).toBe(200);
    expect(await json(revoked)).toMatchObject({ id: next.id, status: "revoked" });
    await expectProblem(await call(next.key, `${m}-f`), 401, "KEY_INVALID");

    // Exactly the allowed calls reached the origin.
    const seen = (await originRecords(m)).map((r) => r.url.split("/")[1]!.slice(-1));
    expect(seen.sort()).toEqual(["a", "b", "c", "e"]);

    const actions = await env.DB.prepare("SELECT action FROM admin_audit WHERE target_id IN (?, ?) ORDER BY id").bind(keyId, next.id).all<{ action: string }>();
    expect(actions.results.map((r) => r.action)).toEqual(expect.arrayContaining(["key.create", "key.rotate", "key.revoke"]));
  });

  it("rotation without grace revokes the old key at once; a revoked key cannot be rotated", async () => {
    const { keyId, key } = await seedCaller();
    const next = await json(await admin("POST", `/keys/${keyId}/rotate`, {}));
    await expectProblem(await call(key, unique("nograce")), 401, "KEY_INVALID");
    expect((await call(next.key, unique("nograce"))).status).toBe(200);
    await expectProblem(await admin("POST", `/keys/${keyId}/rotate`, {}), 409, "CONFLICT");
  });

  it("revoking twice answers the same and keeps the first revocation time", async () => {
    const { keyId } = await seedCaller();
    const first = await json(await admin("POST", `/keys/${keyId}/revoke`));
    const second = await json(await admin("POST", `/keys/${keyId}/revoke`));
    expect(second.revokedAt).toBe(first.revokedAt);
  });

  it("an expired key is refused even while its resolution is cached", async () => {
    const { user } = await seedCaller();
    const soon = new Date(Date.now() + 1_500).toISOString();
    const issued = await json(await admin("POST", `/users/${user.id}/keys`, { expiresAt: soon }));
    expect((await call(issued.key, unique("exp"))).status).toBe(200);
    await sleep(1_700);
    await expectProblem(await call(issued.key, unique("exp")), 401, "KEY_INVALID");
  });

  it("a disabled or expired user's keys are refused; re-enabling restores access", async () => {
    const { user, key } = await seedCaller();
    expect((await admin("PATCH", `/users/${user.id}`, { status: "disabled" })).status).toBe(200);
    await expectProblem(await call(key, unique("dis")), 401, "KEY_INVALID");
    expect((await admin("PATCH", `/users/${user.id}`, { status: "active" })).status).toBe(200);
    expect((await call(key, unique("dis"))).status).toBe(200);

    await admin("PATCH", `/users/${user.id}`, { expiresAt: new Date(Date.now() + 1_000).toISOString() });
    await sleep(1_200);
    await expectProblem(await call(key, unique("uexp")), 401, "KEY_INVALID");
  });
});

describe("key resolution cache", () => {
  it("a change made behind the admin API (another isolate) takes effect within the TTL", async () => {
    // Tests run with KEY_CACHE_TTL_SECONDS=1. Writing D1 directly models an admin call that
    // landed in another isolate: this isolate's cache was not purged.
    const { keyId, key } = await seedCaller();
    expect((await call(key, unique("ttl"))).status).toBe(200);
    await env.DB.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ?").bind(Date.now(), keyId).run();
    expect((await call(key, unique("ttl"))).status).toBe(200); // still cached
    await sleep(1_100);
    await expectProblem(await call(key, unique("ttl")), 401, "KEY_INVALID");
  });

  it("an unknown key is remembered as unknown only briefly", async () => {
    const { user } = await seedCaller();
    const issued = await json(await admin("POST", `/users/${user.id}/keys`, {}));
    // Detach the key from D1, ask once (negative cache entry), then put it back directly.
    const row = await env.DB.prepare("SELECT * FROM api_keys WHERE id = ?").bind(issued.id).first<Record<string, unknown>>();
    await env.DB.prepare("UPDATE api_keys SET hash = 'x' || hash WHERE id = ?").bind(issued.id).run();
    await expectProblem(await call(issued.key, unique("neg")), 401, "KEY_INVALID");
    await env.DB.prepare("UPDATE api_keys SET hash = ? WHERE id = ?").bind(row!.hash, issued.id).run();
    await expectProblem(await call(issued.key, unique("neg")), 401, "KEY_INVALID"); // negative cache
    await sleep(1_100);
    expect((await call(issued.key, unique("neg"))).status).toBe(200);
  });

  it("stores only the SHA-256 of a key, never the key", async () => {
    const { keyId, key } = await seedCaller();
    const row = await env.DB.prepare("SELECT * FROM api_keys WHERE id = ?").bind(keyId).first<Record<string, unknown>>();
    expect(row!.hash).toBe(await hashApiKey(key));
    expect(JSON.stringify(row)).not.toContain(key);
    expect(row!.start).toBe(key.slice(0, 8));
  });

  it("records last use without a D1 write per request", async () => {
    const { keyId, key } = await seedCaller();
    for (let i = 0; i < 3; i++) expect((await call(key, unique("lu"))).status).toBe(200);
    // last_used_at comes from the audit trail: it lands with the batch (flush + queue delivery).
    let view = await json(await admin("GET", `/keys/${keyId}`));
    for (let i = 0; i < 80 && view.lastUsedAt === null; i++) {
      await sleep(100);
      view = await json(await admin("GET", `/keys/${keyId}`));
    }
    expect(view.lastUsedAt).not.toBeNull();
    expect(Date.now() - Date.parse(view.lastUsedAt)).toBeLessThan(60_000);
  });
});

describe("authentication failures all look the same", () => {
  it("missing, malformed, bad-checksum, unknown, revoked and expired keys get identical 401 bodies", async () => {
    const { key: revoked, keyId } = await seedCaller();
    await admin("POST", `/keys/${keyId}/revoke`);
    const { user } = await seedCaller();
    const expiring = await json(await admin("POST", `/users/${user.id}/keys`, { expiresAt: new Date(Date.now() + 1_000).toISOString() }));
    await sleep(1_100);
    const { key: good } = await seedCaller();
    const typo = good.slice(0, 10) + (good[10] === "a" ? "b" : "a") + good.slice(11);
    const unknownWellFormed = await (async () => {
      // A syntactically valid key that was never issued: mint one with the real generator.
      const { generateApiKey } = await import("../../worker/lib/api-key");
      return generateApiKey().key;
    })();
    const m = unique("same401");
    const cases: Record<string, string>[] = [
      {},
      { authorization: "" },
      { authorization: "Bearer" },
      { authorization: "Basic dXNlcjpwYXNz" },
      { authorization: "Bearer not-a-key" },
      { authorization: `Bearer ${typo}` },
      { authorization: `Bearer ${unknownWellFormed}` },
      { authorization: `Bearer ${revoked}` },
      { authorization: `Bearer ${expiring.key}` },
      { "x-api-key": `${good}x` },
      { authorization: `Bearer ${good}`, "x-api-key": unknownWellFormed },
    ];
    const bodies = new Set<string>();
    for (const headers of cases) {
      const res = await gw(`/echo/${m}`, { headers });
      const body = await expectProblem(res, 401, "KEY_INVALID");
      expect(res.headers.get("www-authenticate")).toBe('Bearer realm="portcullis"');
      const { requestId: _id, ...rest } = body;
      bodies.add(JSON.stringify(rest));
    }
    expect(bodies.size).toBe(1);
    expect(await originRecords(m)).toHaveLength(0);
  });

  it("accepts the key in X-API-Key as well as Authorization", async () => {
    const { key } = await seedCaller();
    expect((await gw(`/echo/${unique("xapi")}`, { headers: { "x-api-key": key } })).status).toBe(200);
    expect((await gw(`/echo/${unique("xapi")}`, { headers: { authorization: `bearer ${key}`, "x-api-key": key } })).status).toBe(200);
  });
});

describe("permissions", () => {
  it("grants by exact permission and by wildcard, and refuses what no role grants", async () => {
    const exact = await seedCaller({ permissions: ["echo:read"] });
    const wild = await seedCaller({ permissions: ["echo:*"] });
    const all = await seedCaller({ permissions: ["*"] });
    const other = await seedCaller({ permissions: ["billing:*", "echo:reader"] });
    const m = unique("perm");
    expect((await gw(`/echo/${m}`, { headers: bearer(exact.key) })).status).toBe(200);
    await expectProblem(await gw(`/echo-write/${m}`, { method: "POST", headers: bearer(exact.key), body: "x" }), 403, "FORBIDDEN");
    expect((await gw(`/echo-write/${m}`, { method: "POST", headers: bearer(wild.key), body: "x" })).status).toBe(200);
    expect((await gw(`/echo-write/${m}`, { method: "DELETE", headers: bearer(all.key) })).status).toBe(200);
    await expectProblem(await gw(`/echo/${m}-o`, { headers: bearer(other.key) }), 403, "FORBIDDEN");
    expect(await originRecords(`${m}-o`)).toHaveLength(0);
  });

  it("a key's scope narrows its user's permissions and never widens them", async () => {
    const narrowed = await seedCaller({ permissions: ["echo:*"], keyPermissions: ["echo:read"] });
    const widened = await seedCaller({ permissions: ["echo:read"], keyPermissions: ["*"] });
    const m = unique("scope");
    expect((await gw(`/echo/${m}`, { headers: bearer(narrowed.key) })).status).toBe(200);
    await expectProblem(await gw(`/echo-write/${m}`, { method: "POST", headers: bearer(narrowed.key), body: "x" }), 403, "FORBIDDEN");
    expect((await gw(`/echo/${m}`, { headers: bearer(widened.key) })).status).toBe(200);
    await expectProblem(await gw(`/echo-write/${m}`, { method: "POST", headers: bearer(widened.key), body: "x" }), 403, "FORBIDDEN");
    expect((await originRecords(m)).filter((r) => r.method === "POST")).toHaveLength(0);
  });

  it("role changes apply at once in this isolate", async () => {
    const { role, key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("rolechg");
    await expectProblem(await gw(`/echo-write/${m}`, { method: "PUT", headers: bearer(key), body: "x" }), 403, "FORBIDDEN");
    await admin("PATCH", `/roles/${role.id}`, { permissions: ["echo:read", "echo:write"] });
    expect((await gw(`/echo-write/${m}`, { method: "PUT", headers: bearer(key), body: "x" })).status).toBe(200);
  });

  it("restricts a route to a group", async () => {
    const internal = await seedCaller({ group: "internal" });
    const partner = await seedCaller({ group: "partner" });
    const m = unique("grp");
    expect((await gw(`/internal/${m}`, { headers: bearer(internal.key) })).status).toBe(200);
    await expectProblem(await gw(`/internal/${m}-p`, { headers: bearer(partner.key) }), 403, "FORBIDDEN");
    expect(await originRecords(`${m}-p`)).toHaveLength(0);
  });

  it("enforces the user's IP allowlist from CF-Connecting-IP only (IPv4 and IPv6)", async () => {
    const { key } = await seedCaller({ allowedIps: ["203.0.113.0/24", "2001:db8:1::/48"] });
    const m = unique("ip");
    const at = (ip: string | null, extra: Record<string, string> = {}) =>
      gw(`/echo/${m}`, { headers: { ...bearer(key), ...(ip ? { "cf-connecting-ip": ip } : {}), ...extra } });
    expect((await at("203.0.113.9")).status).toBe(200);
    expect((await at("2001:db8:1:ffff::1")).status).toBe(200);
    await expectProblem(await at("198.51.100.1"), 403, "FORBIDDEN");
    await expectProblem(await at("2001:db8:2::1"), 403, "FORBIDDEN");
    await expectProblem(await at(null, { "x-forwarded-for": "203.0.113.9", "x-real-ip": "203.0.113.9" }), 403, "FORBIDDEN");
    expect(await originRecords(m)).toHaveLength(2);
  });
});
