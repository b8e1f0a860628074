import { createExecutionContext, createMessageBatch, env, getQueueResult } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { redact } from "../../worker/services/admin-audit";
import worker from "../fixtures/worker";
import { admin, adminDoc, gw, json, seedCaller, unique } from "../helpers";
import { eventsFor, fakeEvent, rowToEvent } from "../audit-helpers";

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
    const sizes: number[] = [];
    for (const [path, init, status] of calls) {
      const res = await gw(path, init);
      expect(res.status, path).toBe(status);
      sizes.push((await res.arrayBuffer()).byteLength);
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
    // Bytes sent to the client, streamed origin answers and the gateway's own problems alike.
    expect(ids.map((_, i) => ev(i).bytes_out)).toEqual(sizes);
  });

  it("does not audit admin calls, dashboard pages, /healthz or routes that disable the plugin", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("skip");
    expect((await gw(`/echo-unaudited/${m}`, { headers: auth(key) })).status).toBe(200);
    expect((await gw("/healthz")).status).toBe(200);
    // The dashboard: its pages are not proxied requests (and, routed by no gateway route, would
    // otherwise count as refusals in the usage charts); its changes go to the admin trail.
    expect((await gw("/admin/ui")).status).toBe(303);
    expect((await gw("/admin/ui/login")).status).toBe(200);
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

/** Delivers `bodies` to the worker's queue handler as one batch (message ids msg-0, msg-1, …). */
async function deliverBatch(bodies: unknown[], attempts: number, e: typeof env = env) {
  const batch = createMessageBatch("portcullis-audit", bodies.map((body, i) => ({ id: `msg-${i}`, timestamp: new Date(), attempts, body })));
  const ctx = createExecutionContext();
  await worker.queue(batch, e as never);
  return getQueueResult(batch, ctx);
}

describe("queue consumer", () => {
  it("stores each event once, however often the queue delivers it", async () => {
    const { key, user } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("redeliver");
    for (let i = 0; i < 3; i++) expect((await gw(`/echo/${m}/${i}`, { headers: auth(key) })).status).toBe(200);
    const stored = await eventsFor(m, 3);
    const extra = fakeEvent({ path: `/echo/${m}/never-flushed`, userId: user.id });
    const bodies = [...stored.map(rowToEvent), extra, { not: "an event" }];
    const usageBefore = await userRequests(user.id);

    for (let attempt = 1; attempt <= 2; attempt++) {
      const result = await deliverBatch(bodies, attempt);
      expect(result.retryMessages).toEqual([]);
      expect(result.explicitAcks.sort()).toEqual(bodies.map((_, i) => `msg-${i}`).sort());
    }
    const rows = await eventsFor(m, 4);
    expect(rows.map((r) => r.id).sort()).toEqual([...stored.map((r) => r.id), extra.id].sort());
    // Usage counted the never-flushed event once, and the redelivered ones not again.
    expect(await userRequests(user.id)).toBe(usageBefore + 1);
  });

  it("takes packs of events (rows, or objects as before rows) and bare events alike, dropping only the malformed events of a pack", async () => {
    const m = unique("packs");
    const [a, b, c, d, e, f] = [0, 1, 2, 3, 4, 5].map((i) => fakeEvent({ path: `/echo/${m}/${i}` }));
    const fields = Object.keys(e!);
    const bodies = [
      { events: [a, { id: "req_not-an-event" }, b] },
      c,
      { events: [d] },
      { events: "not a list" },
      { events: [{ nope: true }] },
      // Rows: a row that is not a list is dropped; a field name outside RequestEvent is ignored.
      { fields: [...fields, "__proto__"], rows: [[...Object.values(e!), { polluted: true }], "not a row", Object.values(f!)] },
    ];
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      for (let attempt = 1; attempt <= 2; attempt++) {
        const result = await deliverBatch(bodies, attempt);
        expect(result.retryMessages).toEqual([]);
        expect(result.explicitAcks.sort()).toEqual(bodies.map((_, i) => `msg-${i}`).sort());
      }
      const logged = errors.mock.calls.map(([line]) => JSON.parse(String(line)) as { msg: string; messageId: string; count?: number });
      expect(logged).toContainEqual(expect.objectContaining({ msg: "malformed audit events dropped", messageId: "msg-0", count: 1 }));
      expect(logged).toContainEqual(expect.objectContaining({ msg: "malformed audit message dropped", messageId: "msg-3" }));
      expect(logged).toContainEqual(expect.objectContaining({ msg: "malformed audit events dropped", messageId: "msg-4", count: 1 }));
      expect(logged).toContainEqual(expect.objectContaining({ msg: "malformed audit events dropped", messageId: "msg-5", count: 1 }));
    } finally {
      errors.mockRestore();
    }
    // Every good event once, though the batch came twice.
    const rows = await eventsFor(m, 6);
    expect(rows.map((r) => r.id).sort()).toEqual([a, b, c, d, e, f].map((x) => x!.id).sort());
  });

  it("asks the queue to retry a batch D1 refused, and the redelivery stores each event once", async () => {
    const m = unique("retry");
    const events = [0, 1, 2].map((i) => fakeEvent({ path: `/echo/${m}/${i}` }));
    const deliver = (attempts: number, e: typeof env) => deliverBatch(events, attempts, e);
    const brokenDb = { prepare: () => { throw new Error("d1 down"); }, batch: () => Promise.reject(new Error("d1 down")) };
    const quiet = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const failed = await deliver(1, { ...env, DB: brokenDb } as never);
      expect(failed.explicitAcks).toEqual([]);
      expect(failed.retryMessages.map((r: { msgId: string }) => r.msgId).sort()).toEqual(["msg-0", "msg-1", "msg-2"]);
    } finally {
      quiet.mockRestore();
    }
    expect((await env.DB.prepare("SELECT COUNT(*) AS n FROM request_events WHERE path LIKE ?").bind(`%${m}%`).first<{ n: number }>())!.n).toBe(0);
    for (const attempt of [2, 3]) {
      const ok = await deliver(attempt, env);
      expect(ok.retryMessages).toEqual([]);
      expect(ok.explicitAcks.sort()).toEqual(["msg-0", "msg-1", "msg-2"]);
    }
    const rows = await eventsFor(m, 3);
    expect(rows.map((r) => r.id).sort()).toEqual(events.map((e) => e.id).sort());
  });

  it("is bound to a real queue in the test worker (the gateway's default path)", () => {
    expect(env.AUDIT_QUEUE).toBeDefined();
  });
});

async function userRequests(userId: string): Promise<number> {
  const row = await env.DB.prepare("SELECT COALESCE(SUM(requests), 0) AS n FROM usage_rollups WHERE granularity = 'day' AND dim = 'user' AND value = ?").bind(userId).first<{ n: number }>();
  return row!.n;
}

describe("secrets never reach the trail", () => {
  it("keeps keys, key hashes and secret values out of every request and admin event", async () => {
    const { key, keyId, user } = await seedCaller({ permissions: ["echo:read"] });
    const rotated = await json(await admin("POST", `/keys/${keyId}/rotate`, { gracePeriodSeconds: 60 }));
    const m = unique("leak");
    await gw(`/echo/${m}/a?api_key=${key}`, { headers: auth(key) });
    await gw(`/echo/${m}/b?innocent=${rotated.key}`, { headers: { "x-api-key": rotated.key } });
    await gw(`/echo/${m}/${key}`, { headers: auth(rotated.key) });
    await gw(`/echo/${m}/d`, { headers: auth(`${key}x`) });
    await eventsFor(m, 4);
    const hashes = (await env.DB.prepare("SELECT hash FROM api_keys WHERE user_id = ?").bind(user.id).all<{ hash: string }>()).results.map((r) => r.hash);
    expect(hashes.length).toBe(2);
    const everything = JSON.stringify([
      (await env.DB.prepare("SELECT * FROM request_events").all()).results,
      (await env.DB.prepare("SELECT * FROM admin_audit").all()).results,
      await (await gw(`/admin/v1/audit/export?log=requests&userId=${user.id}`, { headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` } })).text(),
      await (await gw(`/admin/v1/audit/export?log=admin`, { headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` } })).text(),
    ]);
    for (const secret of [key, rotated.key, ...hashes, env.ECHO_ORIGIN_TOKEN, env.ADMIN_TOKEN]) expect(everything).not.toContain(secret);
    expect(everything).toContain(`/echo/${m}/a?api_key=REDACTED`);
    expect(everything).toContain(`/echo/${m}/b?innocent=REDACTED`);
    expect(everything).toContain(`/echo/${m}/REDACTED`);
  });
});

describe("admin audit", () => {
  it("records actor, action, target and redacted before/after for each mutation, sealed into the chain", async () => {
    const { user, keyId } = await seedCaller({ permissions: ["echo:read"] });
    expect((await admin("PATCH", `/users/${user.id}`, { status: "disabled" })).status).toBe(200);
    expect((await admin("POST", `/keys/${keyId}/revoke`)).status).toBe(200);
    const page = await json(await admin("GET", `/audit/admin?targetId=${user.id}`));
    expect(page.data.map((e: any) => e.action)).toEqual(["user.update", "user.create"]);
    const update = page.data[0];
    expect(update).toMatchObject({ actor: "admin-token", targetType: "user", targetId: user.id, before: { status: "active" }, after: { status: "disabled" } });
    expect(update.requestId).toMatch(/^req_/);
    expect(update.hash).toMatch(/^[0-9a-f]{64}$/);
    const keyEvents = await json(await admin("GET", `/audit/admin?targetType=key&targetId=${keyId}`));
    expect(keyEvents.data.map((e: any) => e.action)).toEqual(["key.revoke", "key.create"]);
    expect(keyEvents.data[1].after).not.toHaveProperty("key");
    expect(keyEvents.data[0].before.status).toBe("active");
    expect(keyEvents.data[0].after.status).toBe("revoked");
  });

  it("redacts secret-bearing fields at any depth (for limits, secrets and future mutations)", () => {
    expect(redact({ name: "db", value: "hunter2", nested: { token: "t", ok: 1 }, list: [{ password: "p" }] })).toEqual({
      name: "db",
      value: "[redacted]",
      nested: { token: "[redacted]", ok: 1 },
      list: [{ password: "[redacted]" }],
    });
  });
});

describe("query API", () => {
  it("lists request events newest first with filters and cursor pagination, and exports NDJSON oldest first", async () => {
    const { key, keyId, user } = await seedCaller({ permissions: ["echo:read"], group: unique("qgrp") });
    const m = unique("query");
    const ids: string[] = [];
    for (const p of ["a", "b", "c", "d"]) ids.push((await gw(`/echo/${m}/${p}`, { headers: auth(key) })).headers.get("x-request-id")!);
    ids.push((await gw(`/echo-write/${m}/e`, { method: "POST", headers: auth(key) })).headers.get("x-request-id")!);
    await eventsFor(m, 5);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: any = await json(await admin("GET", `/audit/requests?userId=${user.id}&limit=2${cursor ? `&cursor=${cursor}` : ""}`));
      expect(page.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.data.map((e: any) => e.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen.sort()).toEqual([...ids].sort());
    const all = await json(await admin("GET", `/audit/requests?userId=${user.id}`));
    const times = all.data.map((e: any) => e.timestamp);
    expect([...times].sort().reverse()).toEqual(times);

    const refused = await json(await admin("GET", `/audit/requests?userId=${user.id}&decision=refused&statusClass=4xx&code=FORBIDDEN`));
    expect(refused.data.map((e: any) => e.id)).toEqual([ids[4]]);
    expect(refused.data[0]).toMatchObject({ decidedBy: "authorize", route: "echo-write" });
    expect((await json(await admin("GET", `/audit/requests?userId=${user.id}&statusClass=2xx`))).data.length).toBe(4);
    expect((await json(await admin("GET", `/audit/requests?userId=${user.id}&from=${new Date(Date.now() + 60_000).toISOString()}`))).data).toEqual([]);
    // Every other filter: key, route, group, who decided, and the end of the range.
    const ids0 = async (q: string) => (await json(await admin("GET", `/audit/requests?${q}`))).data.map((e: any) => e.id).sort();
    expect(await ids0(`keyId=${keyId}`)).toEqual([...ids].sort());
    expect(await ids0(`userId=${user.id}&route=echo-write`)).toEqual([ids[4]]);
    expect(await ids0(`group=${user.group}&route=echo-read`)).toEqual(ids.slice(0, 4).sort());
    expect(await ids0(`keyId=${keyId}&decidedBy=authorize`)).toEqual([ids[4]]);
    expect(await ids0(`keyId=${keyId}&to=${new Date(all.data.at(-1).timestamp).toISOString()}`)).toEqual([]);
    expect(await ids0(`keyId=${keyId}&to=${new Date(Date.now() + 60_000).toISOString()}`)).toEqual([...ids].sort());

    const res = await admin("GET", `/audit/export?log=requests&userId=${user.id}`);
    expect(res.headers.get("content-type")).toContain("application/x-ndjson");
    const lines = (await res.text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((e) => e.id).sort()).toEqual([...ids].sort());
    expect(lines.map((e) => e.timestamp)).toEqual([...lines.map((e) => e.timestamp)].sort());
  });

  it("rejects a forged cursor as VALIDATION_FAILED", async () => {
    const res = await admin("GET", "/audit/requests?cursor=not-a-cursor");
    expect(res.status).toBe(400);
    expect((await json(res)).code).toBe("VALIDATION_FAILED");
  });
});

describe("audit admin API contract", () => {
  it.each(["/audit/requests", "/audit/admin", "/audit/export", "/audit/verify", "/usage", "/keys?unusedForDays=1"])("%s requires the admin token", async (p) => {
    const res = await gw(`/admin/v1${p}`);
    expect(res.status).toBe(401);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect((await json(res)).code).toBe("ADMIN_UNAUTHORIZED");
  });

  it("documents the audit and usage endpoints in the OpenAPI document", async () => {
    const doc = adminDoc();
    for (const p of ["/audit/requests", "/audit/admin", "/audit/export", "/audit/verify", "/usage", "/keys"]) expect(Object.keys(doc.paths)).toContain(p);
    expect(doc.components.schemas.RequestEvent.properties).toHaveProperty("decidedBy");
  });

  it("validates query parameters as VALIDATION_FAILED", async () => {
    for (const p of ["/audit/requests?statusClass=6xx", "/audit/verify?log=nope", "/usage?granularity=week", "/audit/requests?from=yesterday"]) {
      const res = await admin("GET", p);
      expect(res.status, p).toBe(400);
      expect((await json(res)).code).toBe("VALIDATION_FAILED");
    }
  });
});
