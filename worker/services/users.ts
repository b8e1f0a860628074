import { and, asc, eq, exists, gt, inArray, isNotNull, isNull, sql, type AnyColumn, type SQL, type Table } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { Database } from "../db";
import { apiKeys, originSecrets, proxyUsers, roles, userRoles, type ProxyUserRow, type UserStatus } from "../db/schema";
import { GatewayError } from "../errors";
import { newId } from "../lib/ids";
import { adminAuditInsert, type AdminActor } from "./admin-audit";
import { isUniqueViolation } from "./errors";
import { decodeCursor, page } from "./pagination";
import { roleIdsByName } from "./roles";

export interface UserView {
  id: string;
  name: string;
  description: string | null;
  group: string | null;
  status: UserStatus;
  metadata: Record<string, unknown>;
  expiresAt: string | null;
  allowedIps: string[] | null;
  roles: string[];
  createdAt: string;
  updatedAt: string;
}

export const userView = (u: ProxyUserRow, roleNames: string[]): UserView => ({
  id: u.id,
  name: u.name,
  description: u.description,
  group: u.group,
  status: u.status,
  metadata: u.metadata,
  expiresAt: u.expiresAt?.toISOString() ?? null,
  allowedIps: u.allowedIps ?? null,
  roles: [...roleNames].sort(),
  createdAt: u.createdAt.toISOString(),
  updatedAt: u.updatedAt.toISOString(),
});

export interface UserInput {
  name: string;
  description?: string | null | undefined;
  group?: string | null | undefined;
  status?: UserStatus | undefined;
  roles?: string[] | undefined;
  metadata?: Record<string, unknown> | undefined;
  expiresAt?: Date | null | undefined;
  allowedIps?: string[] | null | undefined;
}

/**
 * A batch statement that fails the whole batch unless `holds` is still true when the batch runs.
 * A concurrent admin call can land between a service's reads and its batch; D1 runs a batch as
 * one transaction, so with this first nothing of it (audit row included) is stored on a state
 * that changed meanwhile. SQLite has no ASSERT outside triggers: json() of invalid text is the
 * error. The caller re-reads after a failed batch to say what changed (404, 409) or retries.
 */
export const guard = (db: Database, holds: SQL | undefined) =>
  // A select builder, not db.run: drizzle's D1 batch cannot bind the parameters of a raw statement.
  db.select({ ok: sql`json(CASE WHEN ${holds} THEN '1' ELSE 'changed concurrently' END)` }).from(sql`(SELECT 1)`);

/**
 * For `guard`: the rows `from … where` still give exactly `values` (each row's `value`, in
 * `order`), compared as one comma-joined string: a list of ids as bound parameters would hit
 * D1's 100-parameter cap for a user with many keys, or a role with many holders.
 */
export const listAsRead = (value: SQL | AnyColumn, from: Table, where: SQL | undefined, order: AnyColumn, values: readonly string[]) =>
  sql`(SELECT coalesce(group_concat(${value}, ',' ORDER BY ${order}), '') FROM ${from} WHERE ${where}) = ${values.join(",")}`;

/** The proxy user still exists (for `guard`). */
export const userExists = (db: Database, id: string) => exists(db.select({ id: proxyUsers.id }).from(proxyUsers).where(eq(proxyUsers.id, id)));

const nameTaken = (name: string) => new GatewayError("CONFLICT", `A proxy user named "${name}" already exists.`);

/**
 * Refuses to set a user's expiry to an instant that has passed, as keys do: every key of such a
 * user would be refused at once with the one 401 body that names no reason, so a wrong year or
 * time zone would look like broken keys. `current` is the stored expiry: sending it back
 * unchanged (an edit form does) is not setting it, so an expired user stays editable.
 */
function refusePastExpiry(expiresAt: Date | null | undefined, now: Date, current: Date | null = null): void {
  if (!expiresAt || expiresAt.getTime() > now.getTime() || expiresAt.getTime() === current?.getTime()) return;
  throw new GatewayError("VALIDATION_FAILED", "expiresAt must be in the future.", { errors: [{ path: "expiresAt", message: "must be in the future" }] });
}

async function findUser(db: Database, id: string): Promise<ProxyUserRow> {
  const row = await db.query.proxyUsers.findFirst({ where: eq(proxyUsers.id, id) });
  if (!row) throw new GatewayError("USER_NOT_FOUND", `No proxy user with id "${id}".`);
  return row;
}

async function roleNamesOf(db: Database, userIds: readonly string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(userIds.map((id) => [id, []]));
  if (userIds.length === 0) return out;
  const rows = await db
    .select({ userId: userRoles.userId, name: roles.name })
    .from(userRoles)
    .innerJoin(roles, eq(userRoles.roleId, roles.id))
    .where(inArray(userRoles.userId, [...userIds]));
  for (const r of rows) out.get(r.userId)?.push(r.name);
  return out;
}

export async function createUser(db: Database, who: AdminActor, input: UserInput): Promise<UserView> {
  refusePastExpiry(input.expiresAt, new Date());
  const roleIds = await roleIdsByName(db, input.roles ?? []);
  const now = new Date();
  const row: ProxyUserRow = {
    id: newId("user", now.getTime()),
    name: input.name,
    description: input.description ?? null,
    group: input.group ?? null,
    status: input.status ?? "active",
    metadata: input.metadata ?? {},
    expiresAt: input.expiresAt ?? null,
    allowedIps: input.allowedIps ?? null,
    createdAt: now,
    updatedAt: now,
  };
  const view = userView(row, [...roleIds.keys()]);
  const assignments = [...roleIds.values()].map((roleId) => db.insert(userRoles).values({ userId: row.id, roleId, createdAt: now }));
  try {
    await db.batch([db.insert(proxyUsers).values(row), ...assignments, adminAuditInsert(db, who, { action: "user.create", targetType: "user", targetId: row.id, after: { ...view } }, now)]);
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTaken(input.name);
    // A role deleted since it was looked up fails its assignment's FOREIGN KEY: 400 naming it, not 500.
    await roleIdsByName(db, input.roles ?? []);
    throw err;
  }
  return view;
}

export async function getUser(db: Database, id: string): Promise<UserView> {
  const row = await findUser(db, id);
  return userView(row, (await roleNamesOf(db, [id])).get(id) ?? []);
}

export interface UserListQuery {
  limit: number;
  cursor?: string | undefined;
  group?: string | undefined;
  status?: UserStatus | undefined;
  role?: string | undefined;
  /** Exact name. */
  name?: string | undefined;
  /** Case-insensitive substring of the name. */
  search?: string | undefined;
}

export async function listUsers(db: Database, q: UserListQuery): Promise<{ data: UserView[]; nextCursor: string | null }> {
  const conditions = [
    q.cursor ? gt(proxyUsers.id, decodeCursor(q.cursor)) : undefined,
    q.group ? eq(proxyUsers.group, q.group) : undefined,
    q.status ? eq(proxyUsers.status, q.status) : undefined,
    q.name ? eq(proxyUsers.name, q.name) : undefined,
    // instr, not LIKE: a search for "a_b" or "50%" means those characters, not wildcards.
    q.search ? sql`instr(lower(${proxyUsers.name}), lower(${q.search})) > 0` : undefined,
    q.role
      ? inArray(
          proxyUsers.id,
          db.select({ id: userRoles.userId }).from(userRoles).innerJoin(roles, eq(userRoles.roleId, roles.id)).where(eq(roles.name, q.role)),
        )
      : undefined,
  ];
  const rows = await db
    .select()
    .from(proxyUsers)
    .where(and(...conditions))
    .orderBy(asc(proxyUsers.id))
    .limit(q.limit + 1);
  const { rows: pageRows, nextCursor } = page(rows, q.limit);
  const names = await roleNamesOf(db, pageRows.map((r) => r.id));
  return { data: pageRows.map((r) => userView(r, names.get(r.id) ?? [])), nextCursor };
}

/** The groups proxy users are in, sorted, at most `limit` (groups are free text on users; there is no group table). */
export async function listGroups(db: Database, limit: number): Promise<string[]> {
  const rows = await db.selectDistinct({ group: proxyUsers.group }).from(proxyUsers).where(isNotNull(proxyUsers.group)).orderBy(asc(proxyUsers.group)).limit(limit);
  return rows.map((r) => r.group!);
}

export async function updateUser(db: Database, who: AdminActor, id: string, patch: Partial<UserInput>): Promise<UserView> {
  const before = await findUser(db, id);
  refusePastExpiry(patch.expiresAt, new Date(), before.expiresAt);
  const beforeRoles = (await roleNamesOf(db, [id])).get(id) ?? [];
  // Nothing named, nothing changed: no write, no user.update row claiming a change, updatedAt kept.
  if (Object.values(patch).every((v) => v === undefined)) return userView(before, beforeRoles);
  const roleIds = patch.roles !== undefined ? await roleIdsByName(db, patch.roles) : null;
  const now = new Date();
  const changes = Object.fromEntries(
    (["name", "description", "group", "status", "metadata", "expiresAt", "allowedIps"] as const).filter((k) => patch[k] !== undefined).map((k) => [k, patch[k]]),
  ) as Partial<ProxyUserRow>;
  const after: ProxyUserRow = { ...before, ...changes, updatedAt: now };
  const afterRoles = roleIds ? [...roleIds.keys()] : beforeRoles;
  const roleWrites: BatchItem<"sqlite">[] = roleIds
    ? [db.delete(userRoles).where(eq(userRoles.userId, id)), ...[...roleIds.values()].map((roleId) => db.insert(userRoles).values({ userId: id, roleId, createdAt: now }))]
    : [];
  try {
    await db.batch([
      guard(db, userExists(db, id)),
      db
        .update(proxyUsers)
        .set({ ...changes, updatedAt: now })
        .where(eq(proxyUsers.id, id)),
      ...roleWrites,
      adminAuditInsert(db, who, { action: "user.update", targetType: "user", targetId: id, before: { ...userView(before, beforeRoles) }, after: { ...userView(after, afterRoles) } }, now),
    ]);
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTaken(after.name);
    // Deleted meanwhile (the guard), or a role deleted since it was looked up (FOREIGN KEY): 404 / 400, not 500.
    await findUser(db, id);
    if (patch.roles !== undefined) await roleIdsByName(db, patch.roles);
    throw err;
  }
  return userView(after, afterRoles);
}

/**
 * Deletes a proxy user. Its keys are revoked first (in the same transaction) and then go with
 * it, so no key of a deleted user can authenticate anywhere once caches expire. Origin secrets
 * bound to it go too (named, with their versions, in the audit row): bound to an id that no
 * longer exists, they could never be resolved, re-bound or addressed by the user again, and
 * a credential nobody can use should not stay stored.
 */
export async function deleteUser(db: Database, who: AdminActor, id: string): Promise<{ id: string; revokedKeyIds: string[] }> {
  for (let attempt = 1; ; attempt++) {
    const before = await findUser(db, id);
    const beforeRoles = (await roleNamesOf(db, [id])).get(id) ?? [];
    const live = and(eq(apiKeys.userId, id), isNull(apiKeys.revokedAt));
    const revokedKeyIds = (await db.select({ id: apiKeys.id }).from(apiKeys).where(live)).map((k) => k.id);
    const bound = and(eq(originSecrets.scopeType, "user"), eq(originSecrets.scopeId, id));
    const secrets = await db.select({ id: originSecrets.id, name: originSecrets.name, version: originSecrets.version }).from(originSecrets).where(bound).orderBy(asc(originSecrets.id));
    const now = new Date();
    try {
      await db.batch([
        // The ids reported (answer and audit row) are exactly the keys revoked: the batch only
        // runs while the live keys are still the ones read (none issued or revoked meanwhile).
        guard(
          db,
          and(
            userExists(db, id),
            listAsRead(apiKeys.id, apiKeys, live, apiKeys.id, [...revokedKeyIds].sort()),
            // Likewise the bound secrets, at the versions read (a PUT meanwhile reads again).
            listAsRead(sql`${originSecrets.id} || ':' || ${originSecrets.version}`, originSecrets, bound, originSecrets.id, secrets.map((s) => `${s.id}:${s.version}`)),
          ),
        ),
        db.update(apiKeys).set({ revokedAt: now, updatedAt: now }).where(live),
        db.delete(originSecrets).where(bound),
        db.delete(proxyUsers).where(eq(proxyUsers.id, id)),
        adminAuditInsert(
          db,
          who,
          { action: "user.delete", targetType: "user", targetId: id, before: { ...userView(before, beforeRoles), revokedKeyIds, deletedSecrets: secrets.map((s) => ({ name: s.name, version: s.version })) } },
          now,
        ),
      ]);
      return { id, revokedKeyIds };
    } catch (err) {
      // Deleted meanwhile: 404 (findUser). Its keys or secrets changed meanwhile: read them again.
      await findUser(db, id);
      if (attempt === 3) throw err;
    }
  }
}

export { findUser };
