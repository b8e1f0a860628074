import { eq } from "drizzle-orm";
import type { Database } from "../db";
import { roleLimits, roles, userLimits, userRoles } from "../db/schema";

/** Where an effective limit came from: the route config, a role override or the user's own. */
export type LimitSource = "config" | `role:${string}` | "user";

/** A user's overrides, by limit name: the user's own and the best of its roles'. */
export interface UserOverrides {
  user: Map<string, number>;
  /** limit name → { limit, role } of the most generous role override. */
  role: Map<string, { limit: number; role: string }>;
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
    const best = role.get(r.limitName);
    if (!best || r.limit > best.limit) role.set(r.limitName, { limit: r.limit, role: r.role });
  }
  return { user: new Map(own.map((r) => [r.limitName, r.limit])), role };
}

/** The limit that applies: the user's override, else the most generous role override, else the config. */
export function effectiveLimit(o: UserOverrides | undefined, name: string, configured: number): { limit: number; source: LimitSource } {
  const own = o?.user.get(name);
  if (own !== undefined) return { limit: own, source: "user" };
  const viaRole = o?.role.get(name);
  if (viaRole) return { limit: viaRole.limit, source: `role:${viaRole.role}` };
  return { limit: configured, source: "config" };
}

interface OverrideEntry {
  value: Promise<UserOverrides>;
  /** Set once `value` has resolved (what `peek` answers). */
  resolved: UserOverrides | undefined;
  freshUntil: number;
}

/**
 * Isolate cache of users' overrides. Guarantee (the same as the key cache's): an override set
 * through the admin API applies at once in the isolate that served the call (it purges this
 * cache) and everywhere else within the key cache TTL, without a redeploy. Concurrent misses
 * for one user share one D1 read.
 */
export class OverrideCache {
  private readonly entries = new Map<string, OverrideEntry>();

  constructor(private readonly maxEntries = 10_000) {}

  /**
   * The user's overrides when cached, fresh and already read — synchronously, so the hot path
   * of a limit does not wait a microtask for a value it holds. Undefined = call `get`.
   */
  peek(userId: string, now: number): UserOverrides | undefined {
    const e = this.entries.get(userId);
    return e !== undefined && e.freshUntil > now ? e.resolved : undefined;
  }

  get(db: Database, userId: string, ttlMs: number, now = Date.now()): Promise<UserOverrides> {
    const e = this.entries.get(userId);
    if (e && e.freshUntil > now) return e.value;
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    const value = loadUserOverrides(db, userId);
    const entry: OverrideEntry = { value, resolved: undefined, freshUntil: now + Math.max(ttlMs, 0) };
    value.then(
      (o) => void (entry.resolved = o),
      // A failed read is not cached: the next request tries again.
      () => {
        if (this.entries.get(userId) === entry) this.entries.delete(userId);
      },
    );
    this.entries.set(userId, entry);
    return value;
  }

  /** Puts a user's overrides in the cache as if just read (benchmarks and tests without D1). */
  prime(userId: string, overrides: UserOverrides, ttlMs: number, now = Date.now()): void {
    this.entries.set(userId, { value: Promise.resolve(overrides), resolved: overrides, freshUntil: now + Math.max(ttlMs, 0) });
  }

  purge(): void {
    this.entries.clear();
  }
}

export const isolateOverrideCache = new OverrideCache();
