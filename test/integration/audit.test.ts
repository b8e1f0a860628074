import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { admin, gw, json, seedCaller, unique } from "../helpers";
import { eventsFor } from "../audit-helpers";

const auth = (key: string) => ({ authorization: `Bearer ${key}` });

describe("request audit events", () => {
  it("records exactly one event per request, allowed, refused or failed, with who refused and why", async () => {
    const { key, keyId, user } = await seedCaller({ permissions: ["echo:read"] });
    const revoked = await seedCaller({ permissions: ["echo:read"] });
    expect((await admin("POST", `/keys/${revoked.keyId}/revoke`)).status).toBe(200);
    const m = unique("aud");
    const calls: Array<[string, RequestInit, number]> = [
      [`/echo/${m}/ok?token=s3cr3t&a=1`, { headers: auth(key) }, 200],
      [`/echo/${m}/nokey`, {}, 401],
      [`/echo-write/${m}/w`, { method: "POST", headers: auth(key), body: "hello" }, 403],
      [`/echo/${m}/__status/503`, { headers: auth(key) }, 503],
      [`/dead/${m}`, { headers: auth(key) }, 502],
      [`/echo/${m}/wrong-method`, { method: "DELETE", headers: auth(key) }, 405],
      [`/nowhere/${m}`, { headers: auth(key) }, 404],
      [`/echo/${m};x`, { headers: auth(key) }, 400],
      [`/echo/${m}/revoked`, { headers: auth(revoked.key) }, 401],
    ];
    const ids: string[] = [];
    for (const [path, init, status] of calls) {
      const res = await gw(path, init);
      expect(res.status, path).toBe(status);
      await res.arrayBuffer();
      ids.push(res.headers.get("x-request-id")!);
    }
    const rows = await eventsFor(m, calls.length);
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect([...byId.keys()].sort()).toEqual([...ids].sort());
    const ev = (i: number) => byId.get(ids[i]!)!;

    expect(ev(0)).toMatchObject({
      user_id: user.id,
      key_id: keyId,
      route: "echo-read",
      method: "GET",
      path: `/echo/${m}/ok?token=REDACTED&a=1`,
      decision: "allowed",
      decided_by: null,
      code: null,
      status: 200,
      origin_status: 200,
      bytes_in: 0,
    });
    expect(ev(0).latency_ms).toBeGreaterThanOrEqual(0);
    expect(ev(0).origin_latency_ms).toBeGreaterThanOrEqual(0);
    expect(ev(0).chain).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(ev(0).hash).toMatch(/^[0-9a-f]{64}$/);
    expect(ev(1)).toMatchObject({ user_id: null, key_id: null, decision: "refused", decided_by: "key-auth", code: "KEY_INVALID", reason: "missing", status: 401, origin_status: null });
    expect(ev(2)).toMatchObject({ user_id: user.id, route: "echo-write", method: "POST", decision: "refused", decided_by: "authorize", code: "FORBIDDEN", status: 403, bytes_in: 5 });
    expect(ev(3)).toMatchObject({ decision: "allowed", status: 503, origin_status: 503, code: null });
    expect(ev(4)).toMatchObject({ route: "dead", decision: "error", decided_by: "upstream", code: "UPSTREAM_UNAVAILABLE", status: 502, origin_status: null });
    expect(ev(5)).toMatchObject({ route: "echo-read", method: "DELETE", decision: "refused", decided_by: "gateway", code: "METHOD_NOT_ALLOWED", status: 405, user_id: null });
    expect(ev(6)).toMatchObject({ route: null, decision: "refused", decided_by: "gateway", code: "NOT_FOUND", status: 404 });
    expect(ev(7)).toMatchObject({ route: null, decision: "refused", decided_by: "gateway", code: "PATH_INVALID", status: 400 });
    expect(ev(8)).toMatchObject({ key_id: revoked.keyId, user_id: revoked.user.id, decided_by: "key-auth", code: "KEY_INVALID", reason: "key_revoked" });
  });

  it("does not audit admin calls, /healthz or routes that disable the plugin", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("skip");
    expect((await gw(`/echo-unaudited/${m}`, { headers: auth(key) })).status).toBe(200);
    const probe = unique("probe");
    expect((await gw(`/echo/${probe}`, { headers: auth(key) })).status).toBe(200);
    await eventsFor(probe, 1); // flushed after the unaudited call: had it been recorded, it would be there too
    const { results } = await env.DB.prepare("SELECT id FROM request_events WHERE path LIKE ? OR path LIKE '/admin/%' OR path = '/healthz'").bind(`%${m}%`).all();
    expect(results).toEqual([]);
  });

  it("writes straight to D1 in batches when the route's sink is d1, with an allowlisted query", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("direct");
    for (let i = 0; i < 5; i++) {
      const res = await gw(`/echo-direct/${m}/${i}?page=${i}&q=private`, { headers: auth(key) });
      expect(res.status).toBe(200);
    }
    const rows = await eventsFor(m, 5);
    expect(rows.map((r) => r.path).sort()).toEqual([0, 1, 2, 3, 4].map((i) => `/echo-direct/${m}/${i}?page=${i}&q=REDACTED`));
    expect(rows.every((r) => r.route === "echo-direct" && r.decision === "allowed")).toBe(true);
  });

  it("reports the edge location the runtime gives", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("cf");
    const res = await gw(`/echo/${m}`, { headers: { ...auth(key), "cf-connecting-ip": "203.0.113.7" } });
    expect(res.status).toBe(200);
    const [row] = await eventsFor(m, 1);
    expect(row!.client_ip).toBe("203.0.113.7");
    // Miniflare supplies a request.cf with country and colo.
    expect(row!.country === null || typeof row!.country === "string").toBe(true);
    void json;
  });
});
