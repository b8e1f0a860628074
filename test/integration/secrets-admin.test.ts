import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createDb } from "../../worker/db";
import { putSecret, resolveSecret } from "../../worker/services/secrets";
import { admin, expectProblem, gw, json, seedCaller, unique } from "../helpers";

const name = () => unique("TOKEN").replace(/[^A-Za-z0-9_.-]/g, "_");

async function auditRows(targetId: string) {
  const { results } = await env.DB.prepare("SELECT * FROM admin_audit WHERE target_id = ? ORDER BY created_at, id").bind(targetId).all();
  return results as Array<Record<string, string>>;
}

describe("admin API: origin secrets", () => {
  it("PUT creates then rotates (version 1, 2); GET lists metadata only; DELETE removes; each writes an audit row without the value", async () => {
    const n = name();
    const value1 = `first-${crypto.randomUUID()}`;
    const value2 = `second-${crypto.randomUUID()}`;
    const put1 = await admin("PUT", `/secrets/${n}`, { value: value1 });
    expect(put1.status).toBe(200);
    const v1 = await json(put1);
    expect(v1).toMatchObject({ name: n, scope: "global", userId: null, group: null, version: 1 });
    expect(JSON.stringify(v1)).not.toContain(value1);
    const v2 = await json(await admin("PUT", `/secrets/${n}`, { value: value2 }));
    expect(v2.version).toBe(2);
    expect(v2.createdAt).toBe(v1.createdAt);

    const listRes = await admin("GET", `/secrets?name=${n}`);
    const listText = await listRes.text();
    expect(listRes.status).toBe(200);
    expect(listText).not.toContain(value1);
    expect(listText).not.toContain(value2);
    expect(JSON.parse(listText).data).toEqual([expect.objectContaining({ name: n, version: 2, scope: "global" })]);

    // D1 holds ciphertext only.
    const row = (await env.DB.prepare("SELECT * FROM origin_secrets WHERE name = ?").bind(n).first<{ id: string; ciphertext: string }>())!;
    expect(JSON.stringify(row)).not.toContain(value2);
    expect(row.ciphertext.length).toBeGreaterThan(16);

    expect((await admin("DELETE", `/secrets/${n}`)).status).toBe(204);
    await expectProblem(await admin("DELETE", `/secrets/${n}`), 404, "SECRET_NOT_FOUND");
    expect((await json(await admin("GET", `/secrets?name=${n}`))).data).toEqual([]);

    const audit = await auditRows(row.id);
    expect(audit.map((r) => r.action)).toEqual(["secret.create", "secret.rotate", "secret.delete"]);
    expect(audit.every((r) => r.target_type === "secret" && r.actor === "admin-token")).toBe(true);
    const auditText = JSON.stringify(audit);
    expect(auditText).not.toContain(value1);
    expect(auditText).not.toContain(value2);
    expect(auditText).not.toContain(row.ciphertext);
  });

  it("binds a secret to a proxy user or a group, listed and deleted per binding", async () => {
    const n = name();
    const { user } = await seedCaller();
    expect((await json(await admin("PUT", `/secrets/${n}`, { value: "for-user-123", userId: user.id }))).scope).toBe("user");
    expect((await json(await admin("PUT", `/secrets/${n}`, { value: "for-group-123", group: "partner" }))).scope).toBe("group");
    const list = (await json(await admin("GET", `/secrets?name=${n}`))).data;
    expect(list.map((s: any) => [s.scope, s.userId, s.group]).sort()).toEqual([
      ["group", null, "partner"],
      ["user", user.id, null],
    ]);
    await expectProblem(await admin("DELETE", `/secrets/${n}`), 404, "SECRET_NOT_FOUND");
    expect((await admin("DELETE", `/secrets/${n}?group=partner`)).status).toBe(204);
    expect((await admin("DELETE", `/secrets/${n}?userId=${user.id}`)).status).toBe(204);
  });

  it("refuses bad input as VALIDATION_FAILED and unknown users as USER_NOT_FOUND", async () => {
    const n = name();
    await expectProblem(await admin("PUT", `/secrets/${n}`, { value: "a\r\nx-evil: 1" }), 400, "VALIDATION_FAILED");
    await expectProblem(await admin("PUT", `/secrets/${n}`, { value: "" }), 400, "VALIDATION_FAILED");
    await expectProblem(await admin("PUT", `/secrets/${n}`, { value: "v", extra: true }), 400, "VALIDATION_FAILED");
    await expectProblem(await admin("PUT", `/secrets/${n}`, { value: "v", userId: "usr_0000", group: "g" }), 400, "VALIDATION_FAILED");
    await expectProblem(await admin("PUT", "/secrets/1bad", { value: "v" }), 400, "VALIDATION_FAILED");
    await expectProblem(await admin("PUT", `/secrets/${n}`, { value: "v", userId: "usr_0000000000000000000000" }), 404, "USER_NOT_FOUND");
  });

  it("requires the admin token and is described in the OpenAPI document", async () => {
    await expectProblem(await gw("/admin/v1/secrets"), 401, "ADMIN_UNAUTHORIZED");
    await expectProblem(await gw(`/admin/v1/secrets/${name()}`, { method: "PUT", body: JSON.stringify({ value: "x" }) }), 401, "ADMIN_UNAUTHORIZED");
    const doc = await json(await gw("/admin/v1/openapi.json"));
    expect(Object.keys(doc.paths["/secrets/{name}"]).sort()).toEqual(["delete", "put"]);
    expect(Object.keys(doc.paths["/secrets"])).toEqual(["get"]);
    expect(doc.components.schemas.OriginSecret.properties).not.toHaveProperty("value");
  });
});

describe("origin-secret resolution", () => {
  it("a rotation made elsewhere (no purge here) is served once this isolate's cache TTL has passed", async () => {
    const db = createDb(env.DB);
    const n = name();
    const who = { actor: "test", requestId: "req_test" };
    const cfg = { SECRETS_KEY: env.SECRETS_KEY, SECRET_CACHE_TTL_SECONDS: 0.2 };
    await putSecret(db, env, who, n, { value: "v1-value" });
    expect(await resolveSecret(db, cfg, n, {})).toBe("v1-value");
    // Written straight to D1, as another isolate's admin call would: this isolate's cache is not purged.
    await putSecret(db, env, who, n, { value: "v2-value" });
    expect(await resolveSecret(db, cfg, n, {})).toBe("v1-value");
    await new Promise((r) => setTimeout(r, 250));
    expect(await resolveSecret(db, cfg, n, {})).toBe("v2-value");
  });

  it("a ciphertext moved to another binding does not decrypt (the AAD binds it to name and scope)", async () => {
    const db = createDb(env.DB);
    const n = name();
    const { user } = await seedCaller();
    await putSecret(db, env, { actor: "test", requestId: "req_test" }, n, { value: "partner-only", userId: user.id });
    await env.DB.prepare("UPDATE origin_secrets SET scope_type = 'global', scope_id = '' WHERE name = ?").bind(n).run();
    await expect(resolveSecret(db, { SECRETS_KEY: env.SECRETS_KEY, SECRET_CACHE_TTL_SECONDS: 0 }, n, {})).rejects.toMatchObject({ code: "GATEWAY_MISCONFIGURED" });
  });
});
