// The override snapshot the limit hot path reads: one D1 read per TTL for every user, with the
// same precedence as the admin status (user > most generous role > config).
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { admin, json, seedCaller, unique } from "../../test/helpers";
import { dbFor } from "../db";
import { effectiveLimit, effectiveLimitOf, loadOverrideSnapshot, loadUserOverrides, OverrideCache } from "./overrides";

const db = () => dbFor(env.DB);

/** A user holding two roles that both override "api" (5 and 9) and a user override of "monthly". */
async function seedOverrides() {
  const { user, role } = await seedCaller({ permissions: ["echo:read"] });
  const other = await json(await admin("POST", "/roles", { name: unique("role"), permissions: [] }));
  expect((await admin("PATCH", `/users/${user.id}`, { roles: [role.name, other.name] })).status).toBe(200);
  expect((await admin("PUT", `/roles/${role.id}/limits`, { limits: { api: { limit: 5 } } })).status).toBe(200);
  expect((await admin("PUT", `/roles/${other.id}/limits`, { limits: { api: { limit: 9 } } })).status).toBe(200);
  expect((await admin("PUT", `/users/${user.id}/limits`, { limits: { monthly: { limit: 42 } } })).status).toBe(200);
  return { userId: user.id as string, roleNames: [role.name as string, other.name as string] };
}

describe("override snapshot", () => {
  it("gives every limit the same effective value as the per-user read, in one D1 batch for all users", async () => {
    const { userId, roleNames } = await seedOverrides();
    const snapshot = await loadOverrideSnapshot(db());
    expect(snapshot.empty).toBe(false);
    expect(snapshot.users).toBeDefined();
    const perUser = await loadUserOverrides(db(), userId);
    for (const name of ["api", "monthly", "rl-do"]) {
      expect(effectiveLimitOf(snapshot, snapshot.users!.get(userId), roleNames, name, 20)).toEqual(effectiveLimit(perUser, name, 20));
    }
    expect(effectiveLimitOf(snapshot, snapshot.users!.get(userId), roleNames, "api", 20)).toEqual({ limit: 9, source: `role:${roleNames[1]}` });
    expect(effectiveLimitOf(snapshot, snapshot.users!.get(userId), roleNames, "monthly", 20)).toEqual({ limit: 42, source: "user" });
    expect(effectiveLimitOf(snapshot, undefined, [], "api", 20)).toEqual({ limit: 20, source: "config" });
  });

  it("reads users' own overrides one by one once user_limits outgrows the snapshot cap", async () => {
    const { userId, roleNames } = await seedOverrides();
    // A cap of 0 rows: any user override means per-user reads; role overrides stay in the snapshot.
    const cache = new OverrideCache(100, 0);
    const now = Date.now();
    expect(cache.peek(now)).toBeUndefined();
    const snapshot = await cache.snapshot(db(), 60_000, now);
    expect(snapshot.users).toBeUndefined();
    expect(cache.peek(now)).toBe(snapshot);
    expect(cache.peekUser(userId, now)).toBeUndefined();
    const own = await cache.userOverrides(db(), userId, 60_000, now);
    expect(cache.peekUser(userId, now)).toBe(own);
    expect(effectiveLimitOf(snapshot, own, roleNames, "monthly", 20)).toEqual({ limit: 42, source: "user" });
    expect(effectiveLimitOf(snapshot, own, roleNames, "api", 20)).toEqual({ limit: 9, source: `role:${roleNames[1]}` });
    // Stale after the TTL, gone after a purge (an admin change in this isolate).
    expect(cache.peek(now + 60_000)).toBeUndefined();
    cache.purge();
    expect(cache.peek(now)).toBeUndefined();
    expect(cache.peekUser(userId, now)).toBeUndefined();
  });

  it("does not cache a read that a purge overtook (it may predate the admin change)", async () => {
    const { userId } = await seedOverrides();
    const cache = new OverrideCache(100, 0);
    const now = Date.now();
    const snapshot = cache.snapshot(db(), 60_000, now);
    const own = cache.userOverrides(db(), userId, 60_000, now);
    cache.purge(); // an override change lands while both reads are out
    expect((await own).get("monthly")).toBe(42);
    await snapshot;
    expect(cache.peek(now)).toBeUndefined();
    expect(cache.peekUser(userId, now)).toBeUndefined();
    // Reads started after the purge are cached.
    await cache.snapshot(db(), 60_000, now);
    await cache.userOverrides(db(), userId, 60_000, now);
    expect(cache.peek(now)).toBeDefined();
    expect(cache.peekUser(userId, now)?.get("monthly")).toBe(42);
  });
});

describe("override values are checked on every read path", () => {
  it("per-user reads (user_limits past the snapshot cap) ignore a row D1 holds as text or a fraction, as the snapshot does", async () => {
    const { userId, roleNames } = await seedOverrides();
    // D1 does not enforce the column's type: rows written by hand.
    await env.DB.prepare("UPDATE user_limits SET `limit` = '1,000' WHERE user_id = ? AND limit_name = 'monthly'").bind(userId).run();
    await env.DB.prepare("INSERT INTO user_limits (user_id, limit_name, `limit`, created_at, updated_at) VALUES (?, 'api', 2.5, 0, 0)").bind(userId).run();
    const cache = new OverrideCache(100, 0);
    const now = Date.now();
    const snapshot = await cache.snapshot(db(), 60_000, now);
    expect(snapshot.users).toBeUndefined();
    const own = await cache.userOverrides(db(), userId, 60_000, now);
    // The next source applies: the config for "monthly", the best role's 9 for "api".
    expect(effectiveLimitOf(snapshot, own, roleNames, "monthly", 20)).toEqual({ limit: 20, source: "config" });
    expect(effectiveLimitOf(snapshot, own, roleNames, "api", 20)).toEqual({ limit: 9, source: `role:${roleNames[1]}` });
    // The same answer as the snapshot path and the admin status give.
    const full = await loadOverrideSnapshot(db());
    for (const name of ["monthly", "api"]) expect(effectiveLimitOf(snapshot, own, roleNames, name, 20)).toEqual(effectiveLimitOf(full, full.users!.get(userId), roleNames, name, 20));
  });
});
