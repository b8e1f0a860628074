import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createDb } from "../../worker/db";
import { GatewayError } from "../../worker/errors";
import * as keys from "../../worker/services/keys";
import * as limits from "../../worker/services/limits";
import gateway from "../fixtures/gateway.test.config";
import * as roles from "../../worker/services/roles";
import * as secrets from "../../worker/services/secrets";
import * as users from "../../worker/services/users";
import { admin, expectProblem, json, seedCaller, unique } from "../helpers";

// A concurrent admin call can land between a service's reads and its write (its db.batch). These
// tests put one there deterministically: `interleaved` runs `meanwhile` just before the service's
// first batch. The service must then answer the state as it is (404, 400, 409), never a 500, and
// store nothing — audit row included — that claims a change which did not happen.

const who = { actor: "admin-token", requestId: "req_admin_races" };
const real = () => createDb(env.DB);

function interleaved(meanwhile: () => Promise<unknown>) {
  const db = real();
  let fired = false;
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop === "batch") {
        return async (statements: any) => {
          if (!fired) {
            fired = true;
            await meanwhile();
          }
          return target.batch(statements);
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as typeof db;
}

/** The error a call fails with (a GatewayError is answered as its problem; anything else as a 500). */
const failure = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e);

function expectGatewayError(err: unknown, code: string) {
  expect(err).toBeInstanceOf(GatewayError);
  expect((err as GatewayError).code).toBe(code);
}

async function auditRows(action: string, targetId: string) {
  const { results } = await env.DB.prepare("SELECT action, target_id, after FROM admin_audit WHERE action = ? AND target_id = ?").bind(action, targetId).all<{ action: string; target_id: string; after: string | null }>();
  return results;
}

describe("keys: rotate and revoke racing", () => {
  it("a revoke landing inside a rotation with a grace period stays revoked; the rotation is a 409 that stored nothing", async () => {
    const { keyId, user } = await seedCaller();
    const db = interleaved(() => keys.revokeKey(real(), who, keyId));
    expectGatewayError(await failure(keys.rotateKey(db, who, keyId, 3600)), "CONFLICT");
    const after = await keys.getKey(real(), keyId);
    expect(after.status).toBe("revoked");
    expect(after.revokedAt).not.toBeNull();
    const all = await keys.listKeys(real(), user.id, { limit: 100 });
    expect(all.data.filter((k) => k.rotatedFrom === keyId)).toEqual([]);
    expect(await auditRows("key.rotate", keyId)).toEqual([]);
  });

  for (const grace of [0, 3600]) {
    it(`two rotations of one key (grace ${grace}s) racing: one successor, the other a 409`, async () => {
      const { keyId, user } = await seedCaller();
      const db = interleaved(() => keys.rotateKey(real(), who, keyId, grace));
      expectGatewayError(await failure(keys.rotateKey(db, who, keyId, grace)), "CONFLICT");
      const all = await keys.listKeys(real(), user.id, { limit: 100 });
      expect(all.data.filter((k) => k.rotatedFrom === keyId)).toHaveLength(1);
      expect(await auditRows("key.rotate", keyId)).toHaveLength(1);
    });
  }

  // Over HTTP the two may or may not interleave (the tests above force it); either way the answer is the same.
  it("two rotations sent together over HTTP: exactly one 201, the other a 409 problem", async () => {
    for (let i = 0; i < 5; i++) {
      const { keyId } = await seedCaller();
      const answers = await Promise.all([admin("POST", `/keys/${keyId}/rotate`, {}), admin("POST", `/keys/${keyId}/rotate`, {})]);
      expect(answers.map((r) => r.status).sort()).toEqual([201, 409]);
      await expectProblem(answers.find((r) => r.status === 409)!, 409, "CONFLICT");
    }
  });

  it("a revoke overtaken by a rotation without grace answers the stored revocation and audits nothing of its own", async () => {
    const { keyId } = await seedCaller();
    const db = interleaved(() => keys.rotateKey(real(), who, keyId, 0));
    const answered = await keys.revokeKey(db, who, keyId);
    const stored = await keys.getKey(real(), keyId);
    expect(answered.status).toBe("revoked");
    expect(answered.revokedAt).toBe(stored.revokedAt);
    expect(await auditRows("key.revoke", keyId)).toEqual([]);
  });

  it("issuing a key to a user deleted meanwhile is USER_NOT_FOUND, not a 500", async () => {
    const { user } = await seedCaller();
    const db = interleaved(() => users.deleteUser(real(), who, user.id));
    expectGatewayError(await failure(keys.issueKey(db, who, user.id, {})), "USER_NOT_FOUND");
  });
});

describe("users: checks the write no longer matches", () => {
  it("replacing a user's roles with one deleted meanwhile is VALIDATION_FAILED naming it, not a 500", async () => {
    const { user } = await seedCaller();
    const role = await roles.createRole(real(), who, { name: unique("gone"), permissions: ["x:*"] });
    const db = interleaved(() => roles.deleteRole(real(), who, role.id));
    const err = await failure(users.updateUser(db, who, user.id, { roles: [role.name] }));
    expectGatewayError(err, "VALIDATION_FAILED");
    expect((err as GatewayError).detail).toContain(role.name);
  });

  it("creating a user with a role deleted meanwhile is VALIDATION_FAILED, and no user is stored", async () => {
    const role = await roles.createRole(real(), who, { name: unique("gone"), permissions: ["x:*"] });
    const name = unique("user");
    const db = interleaved(() => roles.deleteRole(real(), who, role.id));
    expectGatewayError(await failure(users.createUser(db, who, { name, roles: [role.name] })), "VALIDATION_FAILED");
    expect((await users.listUsers(real(), { limit: 10, name })).data).toEqual([]);
  });

  it("updating a user deleted meanwhile is USER_NOT_FOUND, and no user.update is audited", async () => {
    const { user } = await seedCaller();
    const db = interleaved(() => users.deleteUser(real(), who, user.id));
    expectGatewayError(await failure(users.updateUser(db, who, user.id, { description: "late" })), "USER_NOT_FOUND");
    expect(await auditRows("user.update", user.id)).toEqual([]);
  });

  it("deleting a user while a key is issued to it reports (answer and audit) exactly the keys it revoked", async () => {
    const { user, keyId } = await seedCaller();
    let issued = "";
    const db = interleaved(async () => (issued = (await keys.issueKey(real(), who, user.id, {})).id));
    const res = await users.deleteUser(db, who, user.id);
    expect(res.revokedKeyIds.sort()).toEqual([keyId, issued].sort());
    const audited = await env.DB.prepare("SELECT before FROM admin_audit WHERE action = 'user.delete' AND target_id = ?").bind(user.id).first<{ before: string }>();
    expect(JSON.parse(audited!.before).revokedKeyIds.sort()).toEqual(res.revokedKeyIds);
  });
});

describe("users: a secret bound while the user is deleted", () => {
  it("deleting a user while a secret is bound to it deletes and reports (audit) that secret too", async () => {
    const { user } = await seedCaller();
    const n = unique("TOKEN").replace(/[^A-Za-z0-9_.-]/g, "_");
    const db = interleaved(() => secrets.putSecret(real(), env as any, who, n, { value: "bound-meanwhile", userId: user.id }));
    await users.deleteUser(db, who, user.id);
    expect(await env.DB.prepare("SELECT count(*) AS n FROM origin_secrets WHERE scope_id = ?").bind(user.id).first("n")).toBe(0);
    const audited = await env.DB.prepare("SELECT before FROM admin_audit WHERE action = 'user.delete' AND target_id = ?").bind(user.id).first<{ before: string }>();
    expect(JSON.parse(audited!.before).deletedSecrets).toEqual([{ name: n, version: 1 }]);
  });
});

describe("roles: changed meanwhile", () => {
  it("updating a role deleted meanwhile is ROLE_NOT_FOUND, and no role.update is audited", async () => {
    const role = await roles.createRole(real(), who, { name: unique("gone"), permissions: ["x:*"] });
    const db = interleaved(() => roles.deleteRole(real(), who, role.id));
    expectGatewayError(await failure(roles.updateRole(db, who, role.id, { description: "late" })), "ROLE_NOT_FOUND");
    expect(await auditRows("role.update", role.id)).toEqual([]);
  });

  it("deleting a role deleted meanwhile is ROLE_NOT_FOUND: one role.delete is audited, not two", async () => {
    const role = await roles.createRole(real(), who, { name: unique("gone"), permissions: ["x:*"] });
    const db = interleaved(() => roles.deleteRole(real(), who, role.id));
    expectGatewayError(await failure(roles.deleteRole(db, who, role.id)), "ROLE_NOT_FOUND");
    expect(await auditRows("role.delete", role.id)).toHaveLength(1);
  });

  it("deleting a role while a user is given it names that user among the holders too", async () => {
    const { role, user } = await seedCaller();
    let added = "";
    const db = interleaved(async () => (added = (await users.createUser(real(), who, { name: unique("late-holder"), roles: [role.name] })).id));
    await roles.deleteRole(db, who, role.id);
    const row = await env.DB.prepare("SELECT before FROM admin_audit WHERE action = 'role.delete' AND target_id = ?").bind(role.id).first<{ before: string }>();
    expect(JSON.parse(row!.before).holders).toEqual([user.id, added].sort());
  });

  it("a PATCH of the description keeps permissions changed meanwhile (it writes on the role as read, else reads again)", async () => {
    const role = await roles.createRole(real(), who, { name: unique("perm"), permissions: ["a:read"] });
    const db = interleaved(() => roles.updateRole(real(), who, role.id, { permissions: ["a:read", "a:write"] }));
    const answered = await roles.updateRole(db, who, role.id, { description: "documented" });
    const stored = await roles.getRole(real(), role.id);
    expect(stored).toMatchObject({ description: "documented", permissions: ["a:read", "a:write"] });
    expect(answered.permissions).toEqual(["a:read", "a:write"]);
  });
});

describe("users with many keys", () => {
  it("deleting a user with 120 live keys revokes and reports every one (no per-key bound parameters)", async () => {
    const { user, keyId } = await seedCaller();
    const issued = [keyId];
    for (let i = 0; i < 119; i++) issued.push((await keys.issueKey(real(), who, user.id, {})).id);
    const res = await users.deleteUser(real(), who, user.id);
    expect(res.revokedKeyIds.sort()).toEqual(issued.sort());
    const live = await env.DB.prepare("SELECT COUNT(*) AS n FROM api_keys WHERE user_id = ? AND revoked_at IS NULL").bind(user.id).first<{ n: number }>();
    expect(live!.n).toBe(0);
  });
});

describe("secrets: PUTs racing", () => {
  it("two PUTs creating one secret: the second answers and audits what is stored (a rotation to version 2)", async () => {
    const name = `RACE_${Date.now().toString(36)}`;
    const db = interleaved(() => secrets.putSecret(real(), env, who, name, { value: "one" }));
    const answered = await secrets.putSecret(db, env, who, name, { value: "two" });
    const stored = (await env.DB.prepare("SELECT id, version FROM origin_secrets WHERE name = ?").bind(name).first<{ id: string; version: number }>())!;
    expect(stored.version).toBe(2);
    expect(answered.version).toBe(2);
    const { results } = await env.DB.prepare("SELECT action, target_id, json_extract(after, '$.version') AS version FROM admin_audit WHERE action LIKE 'secret.%' AND json_extract(after, '$.name') = ? ORDER BY seq").bind(name).all();
    expect(results).toEqual([
      { action: "secret.create", target_id: stored.id, version: 1 },
      { action: "secret.rotate", target_id: stored.id, version: 2 },
    ]);
  });

  it("a PUT bound to a user deleted meanwhile is USER_NOT_FOUND and stores nothing", async () => {
    const { user } = await seedCaller();
    const name = `RACE_${Date.now().toString(36)}`;
    const db = interleaved(() => users.deleteUser(real(), who, user.id));
    expectGatewayError(await failure(secrets.putSecret(db, env, who, name, { value: "v", userId: user.id })), "USER_NOT_FOUND");
    expect(await env.DB.prepare("SELECT id FROM origin_secrets WHERE name = ?").bind(name).first()).toBeNull();
  });
});

describe("secrets: DELETE racing", () => {
  const secretName = () => unique("TOKEN").replace(/[^A-Za-z0-9_.-]/g, "_");

  it("deleting a secret deleted meanwhile is SECRET_NOT_FOUND: one secret.delete is audited, not two", async () => {
    const n = secretName();
    const stored = await secrets.putSecret(real(), env as any, who, n, { value: "v-one" });
    const id = (await env.DB.prepare("SELECT id FROM origin_secrets WHERE name = ?").bind(n).first<{ id: string }>())!.id;
    const db = interleaved(() => secrets.deleteSecret(real(), who, n, {}));
    expectGatewayError(await failure(secrets.deleteSecret(db, who, n, {})), "SECRET_NOT_FOUND");
    expect(stored.version).toBe(1);
    expect(await auditRows("secret.delete", id)).toHaveLength(1);
  });

  it("a DELETE overtaken by a rotation audits the version it deleted", async () => {
    const n = secretName();
    await secrets.putSecret(real(), env as any, who, n, { value: "v-one" });
    const db = interleaved(() => secrets.putSecret(real(), env as any, who, n, { value: "v-two" }));
    await secrets.deleteSecret(db, who, n, {});
    const id = (await env.DB.prepare("SELECT target_id FROM admin_audit WHERE action = 'secret.create' AND after LIKE ?").bind(`%"${n}"%`).first<{ target_id: string }>())!.target_id;
    const rows = (await env.DB.prepare("SELECT before FROM admin_audit WHERE action = 'secret.delete' AND target_id = ?").bind(id).all<{ before: string }>()).results;
    expect(rows.map((r) => JSON.parse(r.before).version)).toEqual([2]);
  });
});

describe("user metadata", () => {
  it("refuses a __proto__ key (it would be dropped silently) with VALIDATION_FAILED", async () => {
    const body = JSON.parse('{"name":"x","metadata":{"__proto__":{"admin":true}}}');
    body.name = unique("proto");
    await expectProblem(await admin("POST", "/users", body), 400, "VALIDATION_FAILED");
    const { user } = await seedCaller();
    await expectProblem(await admin("PATCH", `/users/${user.id}`, JSON.parse('{"metadata":{"__proto__":{}}}')), 400, "VALIDATION_FAILED");
    // Other keys, nested ones included, are kept as sent.
    const ok = await admin("PATCH", `/users/${user.id}`, { metadata: { a: { b: 1 }, constructor: "c" } });
    expect(ok.status).toBe(200);
    expect((await json(ok)).metadata).toEqual({ a: { b: 1 }, constructor: "c" });
  });
});

describe("limit overrides: the user or role deleted meanwhile", () => {
  it("setting a deleted user's overrides is a 404 USER_NOT_FOUND that stored nothing, not a 500", async () => {
    const { user } = await seedCaller();
    const db = interleaved(() => users.deleteUser(real(), who, user.id));
    expectGatewayError(await failure(limits.setUserOverrides(db, gateway, who, user.id, { api: { limit: 5 } })), "USER_NOT_FOUND");
    expect(await auditRows("user.limits.set", user.id)).toHaveLength(0);
  });

  it("setting a deleted role's overrides is a 404 ROLE_NOT_FOUND that stored nothing, not a 500", async () => {
    const role = await roles.createRole(real(), who, { name: unique("race-role"), permissions: [] });
    const db = interleaved(() => roles.deleteRole(real(), who, role.id));
    expectGatewayError(await failure(limits.setRoleOverrides(db, gateway, who, role.id, { api: { limit: 5 } })), "ROLE_NOT_FOUND");
    expect(await auditRows("role.limits.set", role.id)).toHaveLength(0);
  });
});
