import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ADMIN, admin, adminDoc, gw, json, unique } from "../helpers";
import { waitForEvents } from "../audit-helpers";

const MUTATING = new Set(["post", "put", "patch", "delete"]);

describe("admin audit covers every mutation", () => {
  it("each admin mutation the API offers records its events, sealed in the chain, and no event holds a key, key hash or secret value", async () => {
    const doc = adminDoc();
    const offered = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) =>
      Object.keys(ops)
        .filter((m) => MUTATING.has(m))
        .map((m) => `${m.toUpperCase()} ${path}`),
    );

    expect(offered.length).toBeGreaterThanOrEqual(16); // users, roles, keys, limits, secrets
    const steps: Array<{ op: string; requestId: string; actions: string[] }> = [];
    /** One admin call; `op` names the OpenAPI operation it exercises, `actions` the events it must leave. */
    const step = async (op: string, path: string, body: unknown, actions: string[]) => {
      const res = await admin(op.split(" ")[0]!, path, body);
      expect(res.status, `${op} ${path}`).toBeLessThan(300);
      const text = await res.text();
      steps.push({ op, requestId: res.headers.get("x-request-id")!, actions });
      return text ? JSON.parse(text) : null;
    };

    const group = unique("grp");
    const role = await step("POST /roles", "/roles", { name: unique("role"), permissions: ["echo:read"] }, ["role.create"]);
    await step("PATCH /roles/{id}", `/roles/${role.id}`, { description: "audited" }, ["role.update"]);
    const user = await step("POST /users", "/users", { name: unique("user"), group, roles: [role.name] }, ["user.create"]);
    await step("PATCH /users/{id}", `/users/${user.id}`, { description: "audited" }, ["user.update"]);
    const key = await step("POST /users/{id}/keys", `/users/${user.id}/keys`, { name: "laptop" }, ["key.create"]);
    const rotated = await step("POST /keys/{id}/rotate", `/keys/${key.id}/rotate`, { gracePeriodSeconds: 60 }, ["key.rotate", "key.create"]);
    // Some request events for the same caller, so the request trail is searched too.
    const m = unique("adminleak");
    for (const k of [key.key, rotated.key]) expect((await gw(`/echo/${m}?api_key=${k}`, { headers: { authorization: `Bearer ${k}` } })).status).toBe(200);
    await step("POST /keys/{id}/revoke", `/keys/${rotated.id}/revoke`, undefined, ["key.revoke"]);

    await step("PUT /users/{id}/limits", `/users/${user.id}/limits`, { limits: { api: { limit: 7 } } }, ["user.limits.set"]);
    await step("POST /users/{id}/limits/reset", `/users/${user.id}/limits/reset`, { names: ["monthly"] }, ["user.limits.reset"]);
    // shared-do counts per group: the group's counter, reset as the limit's own.
    await step("POST /limits/{name}/reset", `/limits/shared-do/reset?group=${group}`, undefined, ["limit.reset"]);
    await step("DELETE /users/{id}/limits", `/users/${user.id}/limits`, undefined, ["user.limits.clear"]);
    await step("PUT /roles/{id}/limits", `/roles/${role.id}/limits`, { limits: { api: { limit: 9 } } }, ["role.limits.set"]);
    await step("DELETE /roles/{id}/limits", `/roles/${role.id}/limits`, undefined, ["role.limits.clear"]);

    const secret = unique("TOKEN").replace(/[^A-Za-z0-9_.-]/g, "_");
    const values = [1, 2, 3, 4].map((i) => `secret-value-${i}-${crypto.randomUUID()}`);
    await step("PUT /secrets/{name}", `/secrets/${secret}`, { value: values[0] }, ["secret.create"]);
    await step("PUT /secrets/{name}", `/secrets/${secret}`, { value: values[1] }, ["secret.rotate"]);
    await step("PUT /secrets/{name}", `/secrets/${secret}`, { value: values[2], userId: user.id }, ["secret.create"]);
    await step("PUT /secrets/{name}", `/secrets/${secret}`, { value: values[3], group }, ["secret.create"]);
    const ciphertexts = (await env.DB.prepare("SELECT ciphertext FROM origin_secrets WHERE name = ?").bind(secret).all<{ ciphertext: string }>()).results.map((r) => r.ciphertext);
    expect(ciphertexts).toHaveLength(3);
    // No SECRETS_KEY_PREVIOUS here: nothing moves, but the call is still an audited admin action.
    await step("POST /secrets/rekey", "/secrets/rekey", undefined, ["secret.rekey"]);
    await step("DELETE /secrets/{name}", `/secrets/${secret}?userId=${user.id}`, undefined, ["secret.delete"]);
    await step("DELETE /secrets/{name}", `/secrets/${secret}?group=${group}`, undefined, ["secret.delete"]);
    await step("DELETE /secrets/{name}", `/secrets/${secret}`, undefined, ["secret.delete"]);

    const hashes = (await env.DB.prepare("SELECT hash FROM api_keys WHERE user_id = ?").bind(user.id).all<{ hash: string }>()).results.map((r) => r.hash);
    expect(hashes).toHaveLength(2);
    await step("DELETE /users/{id}", `/users/${user.id}`, undefined, ["user.delete"]);
    await step("DELETE /roles/{id}", `/roles/${role.id}`, undefined, ["role.delete"]);

    // Every mutating operation of the admin API was exercised: a new one fails here until it is
    // added above — with its admin event.
    expect([...new Set(steps.map((s) => s.op))].sort()).toEqual([...offered].sort());

    for (const s of steps) {
      const { results } = await env.DB.prepare("SELECT action, actor, seq, hash FROM admin_audit WHERE request_id = ? ORDER BY seq").bind(s.requestId).all<Record<string, any>>();
      expect(results.map((r) => r.action).sort(), s.op).toEqual([...s.actions].sort());
      // Sealed before the API answered.
      for (const r of results) expect(r, s.op).toMatchObject({ actor: "admin-token", seq: expect.any(Number), hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    }
    expect(await json(await admin("GET", "/audit/verify?log=admin"))).toMatchObject({ ok: true, firstBroken: null });

    await waitForEvents("path LIKE ?", [`%${m}%`], 2);
    const trail = JSON.stringify([
      (await env.DB.prepare("SELECT * FROM admin_audit").all()).results,
      (await env.DB.prepare("SELECT * FROM request_events").all()).results,
      await (await gw("/admin/v1/audit/export?log=admin", { headers: ADMIN })).text(),
      await (await gw(`/admin/v1/audit/export?log=requests&userId=${user.id}`, { headers: ADMIN })).text(),
      await json(await admin("GET", `/audit/admin?targetId=${user.id}&limit=500`)),
      await json(await admin("GET", "/audit/admin?targetType=secret&limit=500")),
    ]);
    expect(trail).toContain(secret); // the trail is about this secret…
    expect(trail).toContain(key.id); // …and these keys…
    for (const leak of [key.key, rotated.key, ...hashes, ...values, ...ciphertexts, env.ADMIN_TOKEN, env.SECRETS_KEY, env.ECHO_ORIGIN_TOKEN]) {
      expect(trail.includes(leak), `the audit trail holds ${leak.slice(0, 12)}…`).toBe(false);
    }
  });
});
