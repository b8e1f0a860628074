import { and, asc, eq, exists, gt, inArray, isNull } from "drizzle-orm";
import type { Database } from "../db";
import { roles, userRoles, type RoleRow } from "../db/schema";
import { GatewayError } from "../errors";
import { newId } from "../lib/ids";
import { adminAuditInsert, type AdminActor } from "./admin-audit";
import { isUniqueViolation } from "./errors";
import { decodeCursor, page } from "./pagination";
import { guard, listAsRead } from "./users";

export interface RoleView {
  id: string;
  name: string;
  description: string | null;
  permissions: string[];
  createdAt: string;
  updatedAt: string;
}

export const roleView = (r: RoleRow): RoleView => ({
  id: r.id,
  name: r.name,
  description: r.description,
  permissions: r.permissions,
  createdAt: r.createdAt.toISOString(),
  updatedAt: r.updatedAt.toISOString(),
});

export interface RoleInput {
  name: string;
  description?: string | null | undefined;
  permissions: string[];
}

export async function findRole(db: Database, id: string): Promise<RoleRow> {
  const row = await db.query.roles.findFirst({ where: eq(roles.id, id) });
  if (!row) throw new GatewayError("ROLE_NOT_FOUND", `No role with id "${id}".`);
  return row;
}

const nameTaken = (name: string) => new GatewayError("CONFLICT", `A role named "${name}" already exists.`);

export async function createRole(db: Database, who: AdminActor, input: RoleInput): Promise<RoleView> {
  const now = new Date();
  const row: RoleRow = {
    id: newId("role", now.getTime()),
    name: input.name,
    description: input.description ?? null,
    permissions: [...new Set(input.permissions)],
    createdAt: now,
    updatedAt: now,
  };
  try {
    await db.batch([db.insert(roles).values(row), adminAuditInsert(db, who, { action: "role.create", targetType: "role", targetId: row.id, after: roleView(row) }, now)]);
  } catch (err) {
    if (isUniqueViolation(err)) throw nameTaken(input.name);
    throw err;
  }
  return roleView(row);
}

export async function getRole(db: Database, id: string): Promise<RoleView> {
  return roleView(await findRole(db, id));
}

export async function listRoles(db: Database, q: { limit: number; cursor?: string | undefined; name?: string | undefined }) {
  const conditions = [q.cursor ? gt(roles.id, decodeCursor(q.cursor)) : undefined, q.name ? eq(roles.name, q.name) : undefined];
  const rows = await db
    .select()
    .from(roles)
    .where(and(...conditions))
    .orderBy(asc(roles.id))
    .limit(q.limit + 1);
  const { rows: pageRows, nextCursor } = page(rows, q.limit);
  return { data: pageRows.map(roleView), nextCursor };
}

/**
 * Every role's name and permissions, by name: for forms that offer each role as a choice. Roles
 * are a small vocabulary; a page of them would silently leave the rest out of such a form.
 */
export async function allRoleChoices(db: Database): Promise<Array<Pick<RoleView, "name" | "permissions">>> {
  return db.select({ name: roles.name, permissions: roles.permissions }).from(roles).orderBy(asc(roles.name));
}

/**
 * Optimistic, like the other services' writes: the batch runs only while the role is as read
 * (guard), so a concurrent PATCH is never undone by this one's copy of the fields it did not
 * name, and the answer and the audit row describe what was stored. A role changed meanwhile is
 * read again; one deleted meanwhile is 404 with nothing audited.
 */
export async function updateRole(db: Database, who: AdminActor, id: string, patch: Partial<RoleInput>): Promise<RoleView> {
  for (let attempt = 1; ; attempt++) {
    const before = await findRole(db, id);
    // Nothing named, nothing changed: no write, no role.update row claiming a change, updatedAt kept.
    if (Object.values(patch).every((v) => v === undefined)) return roleView(before);
    const now = new Date();
    const after: RoleRow = {
      ...before,
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.description !== undefined ? { description: patch.description } : {}),
      ...(patch.permissions !== undefined ? { permissions: [...new Set(patch.permissions)] } : {}),
      updatedAt: now,
    };
    try {
      await db.batch([
        guard(db, roleAsRead(db, before)),
        db.update(roles).set({ name: after.name, description: after.description, permissions: after.permissions, updatedAt: now }).where(eq(roles.id, id)),
        adminAuditInsert(db, who, { action: "role.update", targetType: "role", targetId: id, before: roleView(before), after: roleView(after) }, now),
      ]);
      return roleView(after);
    } catch (err) {
      if (isUniqueViolation(err)) throw nameTaken(after.name);
      await findRole(db, id); // deleted meanwhile: 404
      if (attempt === 3) throw err;
    }
  }
}

/**
 * Deleting a role removes it from every user that held it (their keys lose its permissions). The
 * audit row names those users (`before.holders`): their memberships go with the role, and no
 * other row would say who lost it.
 */
export async function deleteRole(db: Database, who: AdminActor, id: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const before = await findRole(db, id);
    const holders = (await db.select({ userId: userRoles.userId }).from(userRoles).where(eq(userRoles.roleId, id)).orderBy(asc(userRoles.userId))).map((r) => r.userId);
    const now = new Date();
    try {
      // As read: the audit row's snapshot is the role that was deleted, with the holders it had,
      // and a role deleted meanwhile (a second DELETE) is a 404 rather than a second role.delete of nothing.
      await db.batch([
        guard(
          db,
          and(
            roleAsRead(db, before),
            listAsRead(userRoles.userId, userRoles, eq(userRoles.roleId, id), userRoles.userId, holders),
          ),
        ),
        db.delete(roles).where(eq(roles.id, id)),
        adminAuditInsert(db, who, { action: "role.delete", targetType: "role", targetId: id, before: { ...roleView(before), holders } }, now),
      ]);
      return;
    } catch (err) {
      await findRole(db, id); // deleted meanwhile: 404
      if (attempt === 3) throw err;
    }
  }
}

/** The role still exists and is as read (for `guard`): every column a write would change. */
function roleAsRead(db: Database, r: RoleRow) {
  return exists(
    db
      .select({ id: roles.id })
      .from(roles)
      .where(
        and(
          eq(roles.id, r.id),
          eq(roles.name, r.name),
          r.description === null ? isNull(roles.description) : eq(roles.description, r.description),
          eq(roles.permissions, r.permissions),
          eq(roles.updatedAt, r.updatedAt),
        ),
      ),
  );
}

/** Role ids for names; unknown names are a validation error naming each one. */
export async function roleIdsByName(db: Database, names: readonly string[]): Promise<Map<string, string>> {
  const unique = [...new Set(names)];
  if (unique.length === 0) return new Map();
  const rows = await db.select({ id: roles.id, name: roles.name }).from(roles).where(inArray(roles.name, unique));
  const found = new Map(rows.map((r) => [r.name, r.id]));
  const missing = unique.filter((n) => !found.has(n));
  if (missing.length) {
    throw new GatewayError("VALIDATION_FAILED", `Unknown role(s): ${missing.join(", ")}.`, { errors: missing.map((n) => ({ path: "roles", message: `unknown role "${n}"` })) });
  }
  return found;
}
