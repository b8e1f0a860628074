import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createDb } from "../../worker/db";
import { GatewayError } from "../../worker/errors";
import * as keys from "../../worker/services/keys";
import { get, post, signIn } from "../dashboard-helpers";
import { admin, expectProblem, gw, json, originRecords, seedCaller, unique } from "../helpers";

/**
 * A key is rotated once. Rotating key A gives B and leaves A working for the grace period; a
 * second rotation of A used to mint another live successor C (only concurrent rotations were
 * refused). A superseded key is now 409 KEY_ALREADY_ROTATED, and nothing is stored.
 */
const who = { actor: "admin-token", requestId: "req_rotate_once" };
const real = () => createDb(env.DB);

async function successorsOf(keyId: string) {
  const { results } = await env.DB.prepare("SELECT id FROM api_keys WHERE rotated_from = ?").bind(keyId).all<{ id: string }>();
  return results.map((r) => r.id);
}

async function auditCount(action: string, targetId: string) {
  const row = await env.DB.prepare("SELECT count(*) AS n FROM admin_audit WHERE action = ? AND target_id = ?").bind(action, targetId).first<{ n: number }>();
  return row!.n;
}

async function keyCount(userId: string) {
  const row = await env.DB.prepare("SELECT count(*) AS n FROM api_keys WHERE user_id = ?").bind(userId).first<{ n: number }>();
  return row!.n;
}

async function reaches(key: string) {
  const marker = unique("rot1");
  const res = await gw(`/echo/${marker}`, { headers: { "x-api-key": key } });
  return res.status === 200 && (await originRecords(marker)).length === 1;
}

describe("rotating a key that was already rotated", () => {
  it("is 409 KEY_ALREADY_ROTATED naming the successor; nothing stored, no audit row; both keys keep working; the successor rotates", async () => {
    const { keyId, key, user } = await seedCaller();
    const first = await admin("POST", `/keys/${keyId}/rotate`, { gracePeriodSeconds: 3600 });
    expect(first.status).toBe(201);
    const b = await json(first);
    const before = await json(await admin("GET", `/keys/${keyId}`));
    expect(before.status).toBe("active"); // in its grace period
    const keysBefore = await keyCount(user.id);

    for (const body of [{ gracePeriodSeconds: 3600 }, {}, { gracePeriodSeconds: 0 }]) {
      const again = await admin("POST", `/keys/${keyId}/rotate`, body);
      const problem = await expectProblem(again, 409, "KEY_ALREADY_ROTATED");
      expect(problem.type).toBe("urn:portcullis:problem:key-already-rotated");
      expect(problem.detail).toContain(b.id);
    }

    expect(await successorsOf(keyId)).toEqual([b.id]);
    expect(await keyCount(user.id)).toBe(keysBefore);
    expect(await auditCount("key.rotate", keyId)).toBe(1);
    // The refused attempts changed nothing about A (not revoked, grace end unchanged).
    expect(await json(await admin("GET", `/keys/${keyId}`))).toEqual(before);
    expect(await reaches(key)).toBe(true);
    expect(await reaches(b.key)).toBe(true);

    // The successor is rotated as usual.
    const c = await admin("POST", `/keys/${b.id}/rotate`, { gracePeriodSeconds: 60 });
    expect(c.status).toBe(201);
    expect((await json(c)).rotatedFrom).toBe(b.id);
  });

  it("a concurrent second rotation of a key that expires before the grace period ends is refused too (its expiry does not change)", async () => {
    const { user } = await seedCaller();
    // A key expiring in 10 minutes keeps that expiry through a rotation with a 1 h grace period,
    // so the guard could not tell a rotation landed meanwhile from its expiry alone.
    const expiring = await keys.issueKey(real(), who, user.id, { expiresAt: new Date(Date.now() + 600_000) });
    const db = real();
    let fired = false;
    const interleaved = new Proxy(db, {
      get(target, prop, receiver) {
        if (prop === "batch") {
          return async (statements: any) => {
            if (!fired) {
              fired = true;
              await keys.rotateKey(real(), who, expiring.id, 3600);
            }
            return target.batch(statements);
          };
        }
        const value = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as typeof db;
    const err = await keys.rotateKey(interleaved, who, expiring.id, 3600).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).status).toBe(409);
    expect(await successorsOf(expiring.id)).toHaveLength(1);
    expect(await auditCount("key.rotate", expiring.id)).toBe(1);
  });

  it("the dashboard answers a superseded key's rotation with the problem's detail, and stores nothing", async () => {
    const { cookie, csrf } = await signIn();
    const { keyId, user } = await seedCaller();
    const b = await json(await admin("POST", `/keys/${keyId}/rotate`, { gracePeriodSeconds: 3600 }));
    const res = await post(`/users/${user.id}/keys/${keyId}/rotate`, { gracePeriodSeconds: "3600", _csrf: csrf }, cookie);
    expect(res.status).toBe(303);
    const location = decodeURIComponent(res.headers.get("location") ?? "");
    expect(location).toContain("error=");
    expect(location).toContain(`already rotated; its successor is "${b.id}"`);
    expect(await successorsOf(keyId)).toEqual([b.id]);
  });

  it("the user page offers no Rotate for a key in its grace period (Revoke stays), and offers it for the successor", async () => {
    const { cookie } = await signIn();
    const { keyId, user } = await seedCaller();
    const b = await json(await admin("POST", `/keys/${keyId}/rotate`, { gracePeriodSeconds: 3600 }));
    const page = await get(`/users/${user.id}`, cookie);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).not.toContain(`/keys/${keyId}/rotate`);
    expect(html).toContain(`/keys/${keyId}/revoke`);
    expect(html).toContain(`/keys/${b.id}/rotate`);
    expect(html).toContain("(rotated)");
  });
});
