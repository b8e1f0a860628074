import { eq } from "drizzle-orm";
import type { Database } from "../db";
import { roleLimits, roles, userLimits, userRoles } from "../db/schema";
import { purgedWithIsolateCaches } from "../lib/ttl-cache";

/** Where an effective limit came from: the route config, a role override or the user's own. */
export type LimitSource = "config" | `role:${string}` | "user";

/** A user's overrides, by limit name: the user's own and the best of its roles'. */
export interface UserOverrides {
  user: Map<string, number>;
  /** limit name → { limit, role } of the most generous role override. */
  role: Map<string, { limit: number; role: string }>;
}

/**
 * Whether a stored override can be a limit: a whole number from 0 to 1e9, as the admin API writes
 * them. D1 does not enforce the column's type, so a row written by hand could hold text ("1,000"),
 * a fraction or an overflow; used as a limit, NaN would make every lease call grant nothing and
 * refuse nothing. Such a row is ignored (the next source applies) and logged, never fatal.
 */
function usable(r: { limit: unknown; limitName: string }, owner: string): boolean {
  if (Number.isSafeInteger(r.limit) && (r.limit as number) >= 0 && (r.limit as number) <= 1_000_000_000) return true;
  console.error(JSON.stringify({ level: "warn", msg: "limit override ignored: not a whole number from 0 to 1e9", owner, limit: r.limitName, value: String(r.limit).slice(0, 40) }));
  return false;
}

/** Loads one user's overrides: its own rows and those of every role it holds (one D1 batch). */
export async function loadUserOverrides(db: Database, userId: string): Promise<UserOverrides> {
  const [own, viaRoles] = await db.batch([
    db.select({ limitName: userLimits.limitName, limit: userLimits.limit }).from(userLimits).where(eq(userLimits.userId, userId)),
    db
      .select({ limitName: roleLimits.limitName, limit: roleLimits.limit, role: roles.name })
      .from(userRoles)
      .innerJoin(roleLimits, eq(roleLimits.roleId, userRoles.roleId))
      .innerJoin(roles, eq(roles.id, userRoles.roleId))
      .where(eq(userRoles.userId, userId)),
  ]);
  const role = new Map<string, { limit: number; role: string }>();
  for (const r of viaRoles) {
    if (!usable(r, `role:${r.role}`)) continue;
    const best = role.get(r.limitName);
    if (!best || r.limit > best.limit) role.set(r.limitName, { limit: r.limit, role: r.role });
  }
  return { user: new Map(own.filter((r) => usable(r, `user:${userId}`)).map((r) => [r.limitName, r.limit])), role };
}

/** The limit that applies: the user's override, else the most generous role override, else the config. */
export function effectiveLimit(o: UserOverrides | undefined, name: string, configured: number): { limit: number; source: LimitSource } {
  const own = o?.user.get(name);
  if (own !== undefined) return { limit: own, source: "user" };
  const viaRole = o?.role.get(name);
  if (viaRole) return { limit: viaRole.limit, source: `role:${viaRole.role}` };
  return { limit: configured, source: "config" };
}

/** Every override in D1 as one isolate holds it, for the hot path: one read per TTL for everyone. */
export interface OverrideSnapshot {
  /**
   * user id → limit name → limit. Undefined when user_limits has more than MAX_SNAPSHOT_USER_ROWS
   * rows: then each user's own overrides are read (and cached) on their own.
   */
  users: Map<string, Map<string, number>> | undefined;
  /** role name → limit name → limit. */
  roles: Map<string, Map<string, number>>;
  /** No override of any kind: every limit is its configured one, no lookup needed. */
  empty: boolean;
}

/** Above this many user_limits rows, user overrides are read per user instead of all at once. */
export const MAX_SNAPSHOT_USER_ROWS = 10_000;

const groupBy = (rows: { key: string; limitName: string; limit: number }[]): Map<string, Map<string, number>> => {
  const out = new Map<string, Map<string, number>>();
  for (const r of rows) {
    if (!usable(r, r.key)) continue;
    let m = out.get(r.key);
    if (!m) out.set(r.key, (m = new Map()));
    m.set(r.limitName, r.limit);
  }
  return out;
};

/** Loads every user and role override (one D1 batch), or every role override when users have too many. */
export async function loadOverrideSnapshot(db: Database, maxUserRows = MAX_SNAPSHOT_USER_ROWS): Promise<OverrideSnapshot> {
  const [own, viaRoles] = await db.batch([
    db.select({ key: userLimits.userId, limitName: userLimits.limitName, limit: userLimits.limit }).from(userLimits).limit(maxUserRows + 1),
    db.select({ key: roles.name, limitName: roleLimits.limitName, limit: roleLimits.limit }).from(roleLimits).innerJoin(roles, eq(roles.id, roleLimits.roleId)),
  ]);
  const users = own.length > maxUserRows ? undefined : groupBy(own);
  return { users, roles: groupBy(viaRoles), empty: users !== undefined && users.size === 0 && viaRoles.length === 0 };
}

/**
 * The limit that applies to a caller, from a snapshot: the user's own override, else the most
 * generous override among the caller's roles (by name, as its identity lists them), else the config.
 */
export function effectiveLimitOf(
  snapshot: OverrideSnapshot,
  own: Map<string, number> | undefined,
  roleNames: readonly string[],
  name: string,
  configured: number,
): { limit: number; source: LimitSource } {
  const mine = own?.get(name);
  if (mine !== undefined) return { limit: mine, source: "user" };
  let best: { limit: number; source: LimitSource } | undefined;
  for (const role of roleNames) {
    const l = snapshot.roles.get(role)?.get(name);
    if (l !== undefined && (!best || l > best.limit)) best = { limit: l, source: `role:${role}` };
  }
  return best ?? { limit: configured, source: "config" };
}

interface Cached<T> {
  value: T;
  freshUntil: number;
}

/**
 * Isolate cache of the overrides. Guarantee (the same as the key cache's): an override set
 * through the admin API applies at once in the isolate that served the call (it purges this
 * cache) and everywhere else within the key cache TTL, without a redeploy.
 *
 * Cost: the whole override set is one snapshot, read once per TTL per isolate whatever the number
 * of users (a per-user read would be one D1 batch per active user per TTL — as many reads again
 * as the key cache makes). Only when user_limits outgrows MAX_SNAPSHOT_USER_ROWS are users' own
 * overrides read per user. Reads are synchronous when cached (`peek`, `peekUser`), so the hot path
 * does not wait a microtask.
 *
 * A request that misses reads for itself; only the answer is shared, and only if no purge
 * happened while it was being read (`generation`). Requests do not wait on each other's reads:
 * sharing a D1 read made workerd cancel some of the waiting requests (docs/design.md, "Key cache
 * guarantee"), so the few requests that miss while a refresh is out each read once.
 */
export class OverrideCache {
  private snap: Cached<OverrideSnapshot> | undefined;
  private readonly perUser = new Map<string, Cached<Map<string, number>>>();
  private generation = 0;

  constructor(
    private readonly maxUsers = 10_000,
    private readonly maxSnapshotUserRows = MAX_SNAPSHOT_USER_ROWS,
  ) {}

  /** The snapshot when cached and fresh; undefined = call `snapshot`. */
  peek(now: number): OverrideSnapshot | undefined {
    const e = this.snap;
    return e !== undefined && e.freshUntil > now ? e.value : undefined;
  }

  /** Reads the snapshot (after `peek` missed) and caches it for `ttlMs` from `now`. A failed read is not cached. */
  async snapshot(db: Database, ttlMs: number, now = Date.now()): Promise<OverrideSnapshot> {
    const readAt = this.generation;
    const value = await loadOverrideSnapshot(db, this.maxSnapshotUserRows);
    if (readAt === this.generation) this.snap = { value, freshUntil: now + Math.max(ttlMs, 0) };
    return value;
  }

  /** A user's own overrides when the snapshot does not hold them (many users with overrides). */
  peekUser(userId: string, now: number): Map<string, number> | undefined {
    const e = this.perUser.get(userId);
    return e !== undefined && e.freshUntil > now ? e.value : undefined;
  }

  /** Reads a user's own overrides (after `peekUser` missed) and caches them. */
  async userOverrides(db: Database, userId: string, ttlMs: number, now = Date.now()): Promise<Map<string, number>> {
    const readAt = this.generation;
    const rows = await db.select({ limitName: userLimits.limitName, limit: userLimits.limit }).from(userLimits).where(eq(userLimits.userId, userId));
    // Checked like the snapshot's rows: this path serves every user once user_limits is large.
    const value = new Map(rows.filter((r) => usable(r, `user:${userId}`)).map((r) => [r.limitName, r.limit]));
    if (readAt === this.generation) {
      if (this.perUser.size >= this.maxUsers) this.perUser.delete(this.perUser.keys().next().value!);
      this.perUser.set(userId, { value, freshUntil: now + Math.max(ttlMs, 0) });
    }
    return value;
  }

  /** Puts a snapshot in the cache as if just read (benchmarks and tests without D1). */
  prime(snapshot: OverrideSnapshot, ttlMs: number, now = Date.now()): void {
    this.snap = { value: snapshot, freshUntil: now + Math.max(ttlMs, 0) };
  }

  purge(): void {
    this.snap = undefined;
    this.perUser.clear();
    this.generation++;
  }
}

/**
 * Purged by every admin mutation in this isolate, not only by override changes: a role renamed,
 * deleted or re-created changes which role names the snapshot's overrides are found under, and
 * the identities (purged too) would otherwise look them up by the new names in the old snapshot.
 */
export const isolateOverrideCache = purgedWithIsolateCaches(new OverrideCache());
