import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { admin, adminDoc, expectProblem, gw, json, seedCaller, unique } from "../helpers";
import committedDoc from "../../public/admin/v1/openapi.json";

async function auditRows(targetId: string) {
  const { results } = await env.DB.prepare("SELECT action, actor, target_type, before, after, request_id FROM admin_audit WHERE target_id = ? ORDER BY id").bind(targetId).all<{
    action: string;
    actor: string;
    target_type: string;
    before: string | null;
    after: string | null;
    request_id: string;
  }>();
  return results;
}

describe("admin authentication", () => {
  it.each([
    ["no header", {}],
    ["wrong token", { authorization: "Bearer not-the-admin-token-at-all" }],
    ["wrong scheme", { authorization: `Basic ${env.ADMIN_TOKEN}` }],
    ["token as a proxy key header", { "x-api-key": env.ADMIN_TOKEN }],
  ])("refuses %s with 401 ADMIN_UNAUTHORIZED", async (_, headers) => {
    const res = await gw("/admin/v1/users", { headers: headers as Record<string, string> });
    const body = await expectProblem(res, 401, "ADMIN_UNAUTHORIZED");
    expect(res.headers.get("www-authenticate")).toContain("Bearer");
    expect(JSON.stringify(body)).not.toContain(env.ADMIN_TOKEN);
  });

  it("refuses a mutation without the token and stores nothing", async () => {
    const name = unique("intruder");
    const res = await gw("/admin/v1/users", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name }) });
    await expectProblem(res, 401, "ADMIN_UNAUTHORIZED");
    const row = await env.DB.prepare("SELECT id FROM proxy_users WHERE name = ?").bind(name).first();
    expect(row).toBeNull();
  });

  it("refuses a proxy user's key on the admin API", async () => {
    const { key } = await seedCaller({ permissions: ["*"] });
    await expectProblem(await gw("/admin/v1/users", { headers: { authorization: `Bearer ${key}` } }), 401, "ADMIN_UNAUTHORIZED");
  });

  it("the committed OpenAPI 3.1 document (public/admin/v1/openapi.json) is the one the route schemas generate", async () => {
    const doc = adminDoc();
    // The asset layer serves the committed file (test/e2e/cli.test.ts fetches it from a running gateway).
    expect(doc, "public/admin/v1/openapi.json is stale: run `npm run cli:types`").toEqual(committedDoc);
    expect(doc.openapi).toBe("3.1.0");
    for (const p of ["/users", "/users/{id}", "/users/{id}/keys", "/keys/{id}", "/keys/{id}/rotate", "/keys/{id}/revoke", "/roles", "/roles/{id}"]) {
      expect(Object.keys(doc.paths)).toContain(p);
    }
    expect(Object.keys(doc.paths["/users"])).toEqual(expect.arrayContaining(["get", "post"]));
    expect(doc.components.schemas.ProxyUserCreate.properties).toHaveProperty("allowedIps");
    expect(doc.components.schemas.Problem.properties).toHaveProperty("code");
    expect(doc.components.securitySchemes.adminToken).toMatchObject({ type: "http", scheme: "bearer" });
  });
});

describe("roles", () => {
  it("creates, reads, lists, updates and deletes a role, auditing each change", async () => {
    const name = unique("readers");
    const created = await admin("POST", "/roles", { name, permissions: ["orders:read", "orders:read", "billing:*"], description: "read orders" });
    expect(created.status).toBe(201);
    const role = await json(created);
    expect(role).toMatchObject({ name, permissions: ["orders:read", "billing:*"], description: "read orders" });
    expect(role.id).toMatch(/^rol_/);

    expect(await json(await admin("GET", `/roles/${role.id}`))).toEqual(role);
    const byName = await json(await admin("GET", `/roles?name=${name}`));
    expect(byName.data).toEqual([role]);

    const patched = await json(await admin("PATCH", `/roles/${role.id}`, { permissions: ["orders:*"] }));
    expect(patched).toMatchObject({ id: role.id, name, permissions: ["orders:*"] });

    expect((await admin("DELETE", `/roles/${role.id}`)).status).toBe(204);
    await expectProblem(await admin("GET", `/roles/${role.id}`), 404, "ROLE_NOT_FOUND");

    const rows = await auditRows(role.id);
    expect(rows.map((r) => r.action)).toEqual(["role.create", "role.update", "role.delete"]);
    expect(JSON.parse(rows[1]!.before!).permissions).toEqual(["orders:read", "billing:*"]);
    expect(JSON.parse(rows[1]!.after!).permissions).toEqual(["orders:*"]);
    expect(rows.every((r) => r.actor === "admin-token" && /^req_/.test(r.request_id))).toBe(true);
  });

  it("rejects a duplicate name with 409 and keeps the first", async () => {
    const name = unique("dup");
    expect((await admin("POST", "/roles", { name, permissions: ["a:b"] })).status).toBe(201);
    await expectProblem(await admin("POST", "/roles", { name, permissions: ["c:d"] }), 409, "CONFLICT");
    const list = await json(await admin("GET", `/roles?name=${name}`));
    expect(list.data).toHaveLength(1);
    expect(list.data[0].permissions).toEqual(["a:b"]);
  });

  it.each([
    ["unknown field", { name: "x1", permissions: [], admin: true }, "admin"],
    ["bad permission characters", { name: "x2", permissions: ["orders read"] }, "permissions.0"],
    ["missing permissions", { name: "x3" }, "permissions"],
    ["bad name", { name: "has space", permissions: [] }, "name"],
  ])("rejects %s with 400 VALIDATION_FAILED naming the field", async (_, body, field) => {
    const res = await admin("POST", "/roles", body);
    const problem = await expectProblem(res, 400, "VALIDATION_FAILED");
    expect(problem.errors.map((e: { path: string }) => e.path).join(" ")).toContain(field);
  });

  it("deleting a role names the users that held it in the role.delete audit row (their memberships go with the role)", async () => {
    const { role, user } = await seedCaller({ permissions: ["echo:read"] });
    const other = await json(await admin("POST", "/users", { name: unique("holder"), roles: [role.name] }));
    expect((await admin("DELETE", `/roles/${role.id}`)).status).toBe(204);
    const row = await env.DB.prepare("SELECT before FROM admin_audit WHERE action = 'role.delete' AND target_id = ?").bind(role.id).first<{ before: string }>();
    expect(JSON.parse(row!.before).holders).toEqual([user.id, other.id].sort());
    expect((await json(await admin("GET", `/users/${user.id}`))).roles).toEqual([]);
  });

  it("deleting a role removes its permissions from its users at once", async () => {
    const { key, role } = await seedCaller({ permissions: ["echo:read"] });
    expect((await gw("/echo/role-delete", { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    expect((await admin("DELETE", `/roles/${role.id}`)).status).toBe(204);
    await expectProblem(await gw("/echo/role-delete", { headers: { authorization: `Bearer ${key}` } }), 403, "FORBIDDEN");
  });
});

describe("proxy users", () => {
  it("creates a user with every field and reads it back", async () => {
    const roleName = unique("r");
    await admin("POST", "/roles", { name: roleName, permissions: ["echo:read"] });
    const name = unique("partner-acme");
    const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
    const res = await admin("POST", "/users", {
      name,
      group: "partner",
      roles: [roleName],
      description: "ACME integration",
      metadata: { contract: "C-17", tier: 2 },
      expiresAt,
      allowedIps: ["203.0.113.0/24", "2001:db8::/32"],
    });
    expect(res.status).toBe(201);
    const user = await json(res);
    expect(user).toMatchObject({
      name,
      group: "partner",
      roles: [roleName],
      status: "active",
      description: "ACME integration",
      metadata: { contract: "C-17", tier: 2 },
      expiresAt,
      allowedIps: ["203.0.113.0/24", "2001:db8::/32"],
    });
    expect(user.id).toMatch(/^usr_[0-9A-Za-z]+$/);
    expect(await json(await admin("GET", `/users/${user.id}`))).toEqual(user);
    const row = await env.DB.prepare("SELECT name, \"group\", status FROM proxy_users WHERE id = ?").bind(user.id).first();
    expect(row).toEqual({ name, group: "partner", status: "active" });
    const audit = await auditRows(user.id);
    expect(audit.map((a) => a.action)).toEqual(["user.create"]);
  });

  it.each([
    ["unknown field", { name: "u-unknown", isAdmin: true }],
    ["unknown role", { name: "u-role", roles: ["no-such-role-xyz"] }],
    ["bad CIDR", { name: "u-cidr", allowedIps: ["10.0.0.0/33"] }],
    ["expiry not a date", { name: "u-exp", expiresAt: "tomorrow" }],
    ["bad status", { name: "u-status", status: "superuser" }],
    ["metadata not an object", { name: "u-meta", metadata: [1, 2] }],
    // 2,111 characters of JSON but 4,211 bytes: the bound is on bytes, as documented.
    ["metadata over 4 KiB in UTF-8", { name: "u-meta-bytes", metadata: { note: "é".repeat(2100) } }],
    ["empty body", {}],
  ])("rejects %s with 400 and stores nothing", async (_, body) => {
    const res = await admin("POST", "/users", body);
    await expectProblem(res, 400, "VALIDATION_FAILED");
    if ("name" in body) {
      expect(await env.DB.prepare("SELECT id FROM proxy_users WHERE name = ?").bind(body.name).first()).toBeNull();
    }
  });

  it("says what a valid group or role name is, not the pattern's source", async () => {
    const group = await expectProblem(await admin("POST", "/users", { name: unique("u-grp"), group: "sales team" }), 400, "VALIDATION_FAILED");
    expect(group.errors).toEqual([{ path: "group", message: "1–64 chars: letters, digits, _ . @ : -" }]);
    const role = await expectProblem(await admin("POST", "/users", { name: unique("u-rol"), roles: ["ok", "not ok"] }), 400, "VALIDATION_FAILED");
    expect(role.errors).toEqual([{ path: "roles.1", message: "1–64 chars: letters, digits, _ . @ : -" }]);
    const secret = await expectProblem(await admin("PUT", "/secrets/GRP_TOKEN", { value: "v", group: "-x" }), 400, "VALIDATION_FAILED");
    expect(secret.detail).not.toContain("/^");
  });

  it("takes metadata of exactly 4096 bytes of JSON", async () => {
    const res = await admin("POST", "/users", { name: unique("u-meta-4k"), metadata: { a: "x".repeat(4096 - '{"a":""}'.length) } });
    expect(res.status).toBe(201);
  });

  it("rejects malformed JSON with 400 and a non-JSON content type with 415", async () => {
    const bad = await gw("/admin/v1/users", { method: "POST", headers: { authorization: `Bearer ${env.ADMIN_TOKEN}`, "content-type": "application/json" }, body: "{name:" });
    await expectProblem(bad, 400, "BAD_REQUEST");
    const text = await gw("/admin/v1/users", { method: "POST", headers: { authorization: `Bearer ${env.ADMIN_TOKEN}`, "content-type": "text/plain" }, body: "name=x" });
    await expectProblem(text, 415, "UNSUPPORTED_MEDIA_TYPE");
  });

  it("rejects a duplicate name with 409", async () => {
    const name = unique("twin");
    expect((await admin("POST", "/users", { name })).status).toBe(201);
    await expectProblem(await admin("POST", "/users", { name }), 409, "CONFLICT");
  });

  it("answers 404 for unknown ids and 400 for malformed ones", async () => {
    await expectProblem(await admin("GET", "/users/usr_doesnotexist0000"), 404, "USER_NOT_FOUND");
    await expectProblem(await admin("PATCH", "/users/usr_doesnotexist0000", { description: "x" }), 404, "USER_NOT_FOUND");
    await expectProblem(await admin("DELETE", "/users/usr_doesnotexist0000"), 404, "USER_NOT_FOUND");
    await expectProblem(await admin("POST", "/users/usr_doesnotexist0000/keys", {}), 404, "USER_NOT_FOUND");
    await expectProblem(await admin("GET", "/users/not-an-id"), 400, "VALIDATION_FAILED");
    await expectProblem(await admin("GET", "/keys/key_doesnotexist0000"), 404, "KEY_NOT_FOUND");
    await expectProblem(await admin("POST", "/keys/key_doesnotexist0000/revoke"), 404, "KEY_NOT_FOUND");
    await expectProblem(await admin("GET", "/no-such-admin-route"), 404, "NOT_FOUND");
  });

  it("patches fields, replaces roles and can clear nullable fields", async () => {
    const r1 = unique("r1");
    const r2 = unique("r2");
    await admin("POST", "/roles", { name: r1, permissions: ["a:b"] });
    await admin("POST", "/roles", { name: r2, permissions: ["c:d"] });
    const user = await json(await admin("POST", "/users", { name: unique("patchme"), roles: [r1], group: "partner", allowedIps: ["10.0.0.0/8"] }));
    const res = await admin("PATCH", `/users/${user.id}`, { roles: [r2], group: "internal", allowedIps: null, metadata: { team: "core" } });
    expect(res.status).toBe(200);
    const patched = await json(res);
    expect(patched).toMatchObject({ id: user.id, roles: [r2], group: "internal", allowedIps: null, metadata: { team: "core" } });
    expect(await json(await admin("GET", `/users/${user.id}`))).toEqual(patched);
    await expectProblem(await admin("PATCH", `/users/${user.id}`, { name: user.name, surprise: 1 }), 400, "VALIDATION_FAILED");
    const audit = await auditRows(user.id);
    expect(audit.map((a) => a.action)).toEqual(["user.create", "user.update"]);
    expect(JSON.parse(audit[1]!.before!).roles).toEqual([r1]);
    expect(JSON.parse(audit[1]!.after!).roles).toEqual([r2]);
  });

  it("an empty PATCH of a user or role changes nothing: 200 with it as stored, no audit row, updatedAt kept", async () => {
    const { user, role } = await seedCaller();
    for (const [path, id, before] of [[`/users/${user.id}`, user.id, user], [`/roles/${role.id}`, role.id, role]] as const) {
      const res = await admin("PATCH", path, {});
      expect(res.status).toBe(200);
      expect(await json(res)).toEqual(before);
      // An update row would claim a change that did not happen.
      expect((await auditRows(id)).map((a) => a.action).filter((a) => a.endsWith(".update"))).toEqual([]);
    }
  });

  it("paginates with a cursor and filters by group, status and role", async () => {
    const group = unique("g").replaceAll("-", "");
    const role = unique("pager");
    await admin("POST", "/roles", { name: role, permissions: ["x:y"] });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const u = await json(await admin("POST", "/users", { name: unique(`pg${i}`), group, ...(i % 2 === 0 ? { roles: [role] } : {}), ...(i === 4 ? { status: "disabled" } : {}) }));
      ids.push(u.id);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { data: { id: string }[]; nextCursor: string | null } = await json(await admin("GET", `/users?group=${group}&limit=2${cursor ? `&cursor=${cursor}` : ""}`));
      expect(page.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.data.map((u) => u.id));
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(seen).toEqual(ids);
    expect(pages).toBe(3);

    const byRole = await json(await admin("GET", `/users?role=${role}`));
    expect(byRole.data.map((u: { id: string }) => u.id)).toEqual([ids[0], ids[2], ids[4]]);
    const disabled = await json(await admin("GET", `/users?group=${group}&status=disabled`));
    expect(disabled.data.map((u: { id: string }) => u.id)).toEqual([ids[4]]);
    await expectProblem(await admin("GET", "/users?limit=1000"), 400, "VALIDATION_FAILED");
    await expectProblem(await admin("GET", "/users?cursor=%%%"), 400, "VALIDATION_FAILED");
  });

  it("deleting a user revokes all its keys: they are refused at once and the user is gone", async () => {
    const { user, key, keyId } = await seedCaller();
    const second = await json(await admin("POST", `/users/${user.id}/keys`, { name: "second" }));
    expect((await gw("/echo/del", { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    const res = await admin("DELETE", `/users/${user.id}`);
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toEqual({ id: user.id, deleted: true, revokedKeyIds: [keyId, second.id].sort() });
    await expectProblem(await gw("/echo/del", { headers: { authorization: `Bearer ${key}` } }), 401, "KEY_INVALID");
    await expectProblem(await gw("/echo/del", { headers: { "x-api-key": second.key } }), 401, "KEY_INVALID");
    await expectProblem(await admin("GET", `/users/${user.id}`), 404, "USER_NOT_FOUND");
    const keysLeft = await env.DB.prepare("SELECT count(*) AS n FROM api_keys WHERE user_id = ?").bind(user.id).first<{ n: number }>();
    expect(keysLeft?.n).toBe(0);
    const audit = await auditRows(user.id);
    expect(audit.at(-1)?.action).toBe("user.delete");
    expect(JSON.parse(audit.at(-1)!.before!).revokedKeyIds).toEqual([keyId, second.id].sort());
  });
});

describe("keys", () => {
  it("issues a key shown once, then lists and gets it without the secret", async () => {
    const { user } = await seedCaller();
    const res = await admin("POST", `/users/${user.id}/keys`, { name: "ci", permissions: ["echo:read"] });
    expect(res.status).toBe(201);
    const issued = await json(res);
    expect(issued.key).toMatch(/^pcl_[0-9A-Za-z]{30}$/);
    expect(issued).toMatchObject({ userId: user.id, name: "ci", status: "active", permissions: ["echo:read"], start: issued.key.slice(0, 8) });
    const listText = await (await admin("GET", `/users/${user.id}/keys`)).text();
    const getText = await (await admin("GET", `/keys/${issued.id}`)).text();
    for (const text of [listText, getText]) {
      expect(text).not.toContain(issued.key);
      expect(text).not.toMatch(/"hash"/);
      expect(text).toContain(issued.start);
    }
    const list = JSON.parse(listText);
    expect(list.data.map((k: { id: string }) => k.id)).toContain(issued.id);
    expect(list.data.every((k: Record<string, unknown>) => !("key" in k))).toBe(true);
  });

  it("refuses to set a user's expiry to an instant that has passed (create and PATCH), naming the field; null still clears it", async () => {
    // Every key of such a user is refused at once with the one 401 body that says nothing: a
    // wrong year or time zone would otherwise look like broken keys. Keys are refused the same way.
    const past = "2001-01-01T00:00:00Z";
    const name = unique("u-past");
    const created = await expectProblem(await admin("POST", "/users", { name, expiresAt: past }), 400, "VALIDATION_FAILED");
    expect(created.errors).toEqual([{ path: "expiresAt", message: "must be in the future" }]);
    expect(await env.DB.prepare("SELECT id FROM proxy_users WHERE name = ?").bind(name).first()).toBeNull();
    const { user } = await seedCaller();
    const patched = await expectProblem(await admin("PATCH", `/users/${user.id}`, { expiresAt: past }), 400, "VALIDATION_FAILED");
    expect(patched.errors).toEqual([{ path: "expiresAt", message: "must be in the future" }]);
    expect((await json(await admin("GET", `/users/${user.id}`))).expiresAt).toBeNull();
    expect((await admin("PATCH", `/users/${user.id}`, { expiresAt: null })).status).toBe(200);
  });

  it("a user whose expiry has passed can still be edited, its unchanged expiry sent back included (as a form does)", async () => {
    const { user } = await seedCaller();
    // Expired behind the API (which refuses to set a passed expiry): no race with the clock.
    const passed = new Date(Date.now() - 60_000).toISOString();
    await env.DB.prepare("UPDATE proxy_users SET expires_at = ? WHERE id = ?").bind(Date.parse(passed), user.id).run();
    const res = await admin("PATCH", `/users/${user.id}`, { description: "expired partner", expiresAt: passed });
    expect(res.status).toBe(200);
    expect(await json(res)).toMatchObject({ description: "expired partner", expiresAt: passed });
  });

  it("rejects a key expiry in the past and unknown fields", async () => {
    const { user } = await seedCaller();
    await expectProblem(await admin("POST", `/users/${user.id}/keys`, { expiresAt: "2001-01-01T00:00:00Z" }), 400, "VALIDATION_FAILED");
    await expectProblem(await admin("POST", `/users/${user.id}/keys`, { key: "pcl_choose_my_own" }), 400, "VALIDATION_FAILED");
    await expectProblem(await admin("POST", `/keys/${(await seedCaller()).keyId}/rotate`, { gracePeriodSeconds: -1 }), 400, "VALIDATION_FAILED");
  });
});
