import { and, asc, eq, exists, getTableColumns, gt, isNull, lt, notExists, or, sql } from "drizzle-orm";
import type { Database } from "../db";
import { apiKeys, type ApiKeyRow } from "../db/schema";
import { GatewayError } from "../errors";
import { generateApiKey, hashApiKey } from "../lib/api-key";
import { newId } from "../lib/ids";
import { adminAuditInsert, type AdminActor } from "./admin-audit";
import { decodeCursor, page } from "./pagination";
import { findUser, guard } from "./users";

export type KeyStatus = "active" | "revoked" | "expired";

/** A key as admins see it: never the key itself, never its hash. */
export interface KeyView {
  id: string;
  userId: string;
  name: string | null;
  start: string;
  status: KeyStatus;
  permissions: string[] | null;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
  rotatedFrom: string | null;
  /** The successor a rotation issued (the key is then in its grace period, or ended): such a key is not rotated again. */
  rotatedTo: string | null;
  createdAt: string;
}

/** Returned once, at creation or rotation: the only time the plaintext key exists outside the caller. */
export type IssuedKeyView = KeyView & { key: string };

export function keyStatus(k: Pick<ApiKeyRow, "revokedAt" | "expiresAt">, now = Date.now()): KeyStatus {
  if (k.revokedAt && k.revokedAt.getTime() <= now) return "revoked";
  if (k.expiresAt && k.expiresAt.getTime() <= now) return "expired";
  return "active";
}

export const keyView = (k: ApiKeyRow, rotatedTo: string | null = null): KeyView => ({
  id: k.id,
  userId: k.userId,
  name: k.name,
  start: k.start,
  status: keyStatus(k),
  permissions: k.permissions ?? null,
  expiresAt: k.expiresAt?.toISOString() ?? null,
  revokedAt: k.revokedAt?.toISOString() ?? null,
  lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
  rotatedFrom: k.rotatedFrom ?? null,
  rotatedTo,
  createdAt: k.createdAt.toISOString(),
});

/**
 * A key's columns plus its successor's id, read in the same statement (api_keys_rotated_from_idx):
 * a page of keys knows which of them were rotated even when the successor is on another page.
 */
const keyWithSuccessor = {
  ...getTableColumns(apiKeys),
  rotatedTo: sql<string | null>`(select "s"."id" from "api_keys" "s" where "s"."rotated_from" = "api_keys"."id" limit 1)`,
};
type KeyWithSuccessor = ApiKeyRow & { rotatedTo: string | null };
const viewOf = (k: KeyWithSuccessor) => keyView(k, k.rotatedTo);

export interface KeyInput {
  name?: string | null | undefined;
  permissions?: string[] | null | undefined;
  expiresAt?: Date | null | undefined;
}

async function findKey(db: Database, id: string): Promise<KeyWithSuccessor> {
  const row = await db.select(keyWithSuccessor).from(apiKeys).where(eq(apiKeys.id, id)).get();
  if (!row) throw new GatewayError("KEY_NOT_FOUND", `No key with id "${id}".`);
  return row;
}

async function newKeyRow(userId: string, input: KeyInput, now: Date, rotatedFrom: string | null): Promise<{ row: ApiKeyRow; key: string }> {
  const { key, start } = generateApiKey();
  return {
    key,
    row: {
      id: newId("key", now.getTime()),
      userId,
      name: input.name ?? null,
      hash: await hashApiKey(key),
      start,
      permissions: input.permissions ? [...new Set(input.permissions)] : null,
      expiresAt: input.expiresAt ?? null,
      revokedAt: null,
      lastUsedAt: null,
      rotatedFrom,
      createdAt: now,
      updatedAt: now,
    },
  };
}

export async function issueKey(db: Database, who: AdminActor, userId: string, input: KeyInput): Promise<IssuedKeyView> {
  await findUser(db, userId);
  const now = new Date();
  if (input.expiresAt && input.expiresAt.getTime() <= now.getTime()) {
    throw new GatewayError("VALIDATION_FAILED", "expiresAt must be in the future.", { errors: [{ path: "expiresAt", message: "must be in the future" }] });
  }
  const { row, key } = await newKeyRow(userId, input, now, null);
  try {
    await db.batch([db.insert(apiKeys).values(row), adminAuditInsert(db, who, { action: "key.create", targetType: "key", targetId: row.id, after: { ...keyView(row) } }, now)]);
  } catch (err) {
    // The user deleted since the check fails the key's FOREIGN KEY: 404, not 500.
    await findUser(db, userId);
    throw err;
  }
  return { ...keyView(row), key };
}

export async function listKeys(db: Database, userId: string, q: { limit: number; cursor?: string | undefined }) {
  await findUser(db, userId);
  const rows = await db
    .select(keyWithSuccessor)
    .from(apiKeys)
    .where(and(eq(apiKeys.userId, userId), q.cursor ? gt(apiKeys.id, decodeCursor(q.cursor)) : undefined))
    .orderBy(asc(apiKeys.id))
    .limit(q.limit + 1);
  const { rows: pageRows, nextCursor } = page(rows, q.limit);
  return { data: pageRows.map(viewOf), nextCursor };
}

/**
 * Keys (active: not revoked, not expired) with no authenticated use in `days` days: never used
 * and created before the cutoff, or last used before it. `last_used_at` comes from the audit trail.
 */
export function unusedKeysCondition(days: number, now = Date.now()) {
  const cutoff = new Date(now - days * 86_400_000);
  return and(
    isNull(apiKeys.revokedAt),
    or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, new Date(now))),
    or(lt(apiKeys.lastUsedAt, cutoff), and(isNull(apiKeys.lastUsedAt), lt(apiKeys.createdAt, cutoff))),
  );
}

/**
 * Keys across all users, oldest first. `unusedForDays` keeps only active keys with no
 * authenticated use for that many days (from `last_used_at`, maintained from the audit trail;
 * a never-used key counts from its creation).
 */
export async function listAllKeys(db: Database, q: { limit: number; cursor?: string | undefined; userId?: string | undefined; unusedForDays?: number | undefined }) {
  const rows = await db
    .select(keyWithSuccessor)
    .from(apiKeys)
    .where(
      and(
        q.cursor ? gt(apiKeys.id, decodeCursor(q.cursor)) : undefined,
        q.userId ? eq(apiKeys.userId, q.userId) : undefined,
        q.unusedForDays !== undefined ? unusedKeysCondition(q.unusedForDays) : undefined,
      ),
    )
    .orderBy(asc(apiKeys.id))
    .limit(q.limit + 1);
  const { rows: pageRows, nextCursor } = page(rows, q.limit);
  return { data: pageRows.map(viewOf), nextCursor };
}

export async function getKey(db: Database, id: string): Promise<KeyView> {
  return viewOf(await findKey(db, id));
}

/**
 * Issues a successor key (same user, name, scope and expiry) that works at once. The old key
 * keeps working for `gracePeriodSeconds` (0 = revoked now), then is refused. A key is rotated
 * once: one that already has a successor (`rotated_from` points at it; in its grace period it is
 * still active) is 409 KEY_ALREADY_ROTATED — rotate the successor instead. Nothing is stored.
 */
export async function rotateKey(db: Database, who: AdminActor, id: string, gracePeriodSeconds: number): Promise<IssuedKeyView & { previous: KeyView }> {
  const old = await findKey(db, id);
  const now = new Date();
  if (keyStatus(old, now.getTime()) !== "active") throw new GatewayError("CONFLICT", `Key "${id}" is ${keyStatus(old, now.getTime())} and cannot be rotated.`);
  // For the write's guard and the conflict check: a rotation that landed after the read.
  const successor = db.select({ id: apiKeys.id }).from(apiKeys).where(eq(apiKeys.rotatedFrom, id));
  if (old.rotatedTo) throw new GatewayError("KEY_ALREADY_ROTATED", `Key "${id}" was already rotated; its successor is "${old.rotatedTo}".`);
  const { row, key } = await newKeyRow(old.userId, { name: old.name, permissions: old.permissions, expiresAt: old.expiresAt }, now, old.id);
  const graceEnd = new Date(now.getTime() + gracePeriodSeconds * 1000);
  // The grace path writes only the expiry: writing revokedAt back (null, as read) would undo a revoke that landed meanwhile.
  const change = gracePeriodSeconds === 0 ? { revokedAt: now, updatedAt: now } : { expiresAt: old.expiresAt && old.expiresAt < graceEnd ? old.expiresAt : graceEnd, updatedAt: now };
  const oldAfter: ApiKeyRow = { ...old, ...change };
  // Still as read: not revoked, not expired, expiry unchanged (a concurrent rotation sets it).
  const asRead = and(
    eq(apiKeys.id, id),
    isNull(apiKeys.revokedAt),
    old.expiresAt ? eq(apiKeys.expiresAt, old.expiresAt) : isNull(apiKeys.expiresAt),
    or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now)),
  );
  try {
    await db.batch([
      // …and without a successor: a concurrent rotation that kept the expiry (the key expires
      // before the grace period would end) changes nothing else the guard could see.
      guard(db, and(exists(db.select({ id: apiKeys.id }).from(apiKeys).where(asRead)), notExists(successor))),
      db.insert(apiKeys).values(row),
      db.update(apiKeys).set(change).where(asRead),
      adminAuditInsert(db, who, { action: "key.rotate", targetType: "key", targetId: id, before: { ...keyView(old) }, after: { ...keyView(oldAfter, row.id), successorId: row.id, gracePeriodSeconds } }, now),
      adminAuditInsert(db, who, { action: "key.create", targetType: "key", targetId: row.id, after: { ...keyView(row) } }, now),
    ]);
  } catch (err) {
    // Revoked, rotated or deleted (404) since read: nothing was stored, no successor exists.
    const current = await findKey(db, id);
    if (current.revokedAt || current.expiresAt?.getTime() !== old.expiresAt?.getTime() || (await successor.get())) {
      throw new GatewayError("CONFLICT", `Key "${id}" was revoked or rotated by a concurrent request; read it again.`);
    }
    throw err;
  }
  return { ...keyView(row), key, previous: keyView(oldAfter, row.id) };
}

/** Revokes a key at once. Revoking a revoked key is a no-op that answers the same. */
export async function revokeKey(db: Database, who: AdminActor, id: string): Promise<KeyView> {
  const old = await findKey(db, id);
  if (old.revokedAt) return viewOf(old);
  const now = new Date();
  const after: KeyWithSuccessor = { ...old, revokedAt: now, updatedAt: now };
  try {
    await db.batch([
      // Not revoked meanwhile (a rotation without grace revokes): its revokedAt and audit row stand.
      guard(db, exists(db.select({ id: apiKeys.id }).from(apiKeys).where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt))))),
      db.update(apiKeys).set({ revokedAt: now, updatedAt: now }).where(eq(apiKeys.id, id)),
      adminAuditInsert(db, who, { action: "key.revoke", targetType: "key", targetId: id, before: { ...viewOf(old) }, after: { ...viewOf(after) } }, now),
    ]);
  } catch (err) {
    const current = await findKey(db, id); // deleted meanwhile: 404
    if (current.revokedAt) return viewOf(current);
    throw err;
  }
  return viewOf(after);
}
