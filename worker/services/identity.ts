import { eq } from "drizzle-orm";
import type { Database } from "../db";
import { GatewayError } from "../errors";
import { apiKeys, proxyUsers, roles, userRoles } from "../db/schema";
import type { UserStatus } from "../db/schema";
import { hashApiKey, isWellFormedApiKey } from "../lib/api-key";
import type { KeyCache } from "./key-cache";

/**
 * What the gateway knows about a caller once its credential resolves: enough for every policy
 * check. Key callers and JWT callers resolve to the same shape (a JWT caller's `key` describes
 * the token), so roles, limits and audit treat them alike.
 */
export interface ResolvedIdentity {
  /** Which authenticator resolved the caller. */
  authMethod: "api-key" | "jwt";
  user: {
    id: string;
    name: string;
    group: string | null;
    status: UserStatus;
    expiresAt: number | null;
    allowedIps: string[] | null;
  };
  key: {
    id: string;
    name: string | null;
    start: string;
    expiresAt: number | null;
    revokedAt: number | null;
    /** Scope-down; null = everything the user's roles grant. */
    permissions: string[] | null;
  };
  /** Role names, for audit and identity headers. */
  roles: string[];
  /** Union of the user's role permissions (before the key's scope-down). */
  permissions: string[];
}

/** Why a key was refused. Never shown to the client (they all get one KEY_INVALID body); logged and audited. */
export type AuthFailure = "missing" | "malformed" | "unknown" | "key_revoked" | "key_expired" | "user_disabled" | "user_expired";

/**
 * The error for "D1 failed while resolving a caller": logs the cause (drizzle's error text
 * carries the query's parameters, so only the cause is logged, with `redact` values masked) and
 * returns the 503 IDENTITY_UNAVAILABLE the caller must throw. Authenticators use it to fail closed.
 */
export function identityStoreFailed(err: unknown, msg: string, redact: readonly string[] = []): GatewayError {
  let cause = String((err as { cause?: unknown })?.cause ?? (err as Error)?.name ?? "error");
  for (const r of redact) if (r) cause = cause.replaceAll(r, "[redacted]");
  console.error(JSON.stringify({ level: "error", msg, error: cause }));
  return new GatewayError("IDENTITY_UNAVAILABLE", "Credentials cannot be checked right now; retry shortly.", { headers: { "retry-after": "1" } });
}

/**
 * Loads a key's identity from D1 by hash in one query: key ⋈ user, left-joined to the user's
 * roles (one row per role, or one row with no role). One round trip per cache miss — this is
 * the cold path, and each D1 call costs as much as the rest of the request.
 */
export async function loadIdentityByHash(db: Database, hash: string): Promise<ResolvedIdentity | null> {
  const rows = await db
    .select({ key: apiKeys, user: proxyUsers, roleName: roles.name, rolePermissions: roles.permissions })
    .from(apiKeys)
    .innerJoin(proxyUsers, eq(apiKeys.userId, proxyUsers.id))
    .leftJoin(userRoles, eq(userRoles.userId, proxyUsers.id))
    .leftJoin(roles, eq(userRoles.roleId, roles.id))
    .where(eq(apiKeys.hash, hash));
  const row = rows[0];
  if (!row) return null;
  const roleRows = rows.filter((r) => r.roleName !== null);
  return {
    authMethod: "api-key",
    user: {
      id: row.user.id,
      name: row.user.name,
      group: row.user.group,
      status: row.user.status,
      expiresAt: row.user.expiresAt?.getTime() ?? null,
      allowedIps: row.user.allowedIps ?? null,
    },
    key: {
      id: row.key.id,
      name: row.key.name,
      start: row.key.start,
      expiresAt: row.key.expiresAt?.getTime() ?? null,
      revokedAt: row.key.revokedAt?.getTime() ?? null,
      permissions: row.key.permissions ?? null,
    },
    roles: roleRows.map((r) => r.roleName!),
    permissions: [...new Set(roleRows.flatMap((r) => r.rolePermissions ?? []))],
  };
}

/**
 * Loads a proxy user (and its roles) by id or name, for authenticators that map an external
 * credential (a JWT claim) to a user. The `key` part is left for the caller to describe the
 * credential. Null when no such user exists.
 */
export async function loadUserIdentity(db: Database, by: "id" | "name", value: string): Promise<Omit<ResolvedIdentity, "key" | "authMethod"> | null> {
  const row = await db.query.proxyUsers.findFirst({ where: by === "id" ? eq(proxyUsers.id, value) : eq(proxyUsers.name, value) });
  if (!row) return null;
  const roleRows = await db
    .select({ name: roles.name, permissions: roles.permissions })
    .from(userRoles)
    .innerJoin(roles, eq(userRoles.roleId, roles.id))
    .where(eq(userRoles.userId, row.id));
  return {
    user: {
      id: row.id,
      name: row.name,
      group: row.group,
      status: row.status,
      expiresAt: row.expiresAt?.getTime() ?? null,
      allowedIps: row.allowedIps ?? null,
    },
    roles: roleRows.map((r) => r.name),
    permissions: [...new Set(roleRows.flatMap((r) => r.permissions))],
  };
}

/** Whether a resolved identity may be used at `now`; the reason when not. */
export function identityFailure(identity: ResolvedIdentity, now: number): AuthFailure | null {
  if (identity.key.revokedAt !== null && identity.key.revokedAt <= now) return "key_revoked";
  if (identity.key.expiresAt !== null && identity.key.expiresAt <= now) return "key_expired";
  if (identity.user.status !== "active") return "user_disabled";
  if (identity.user.expiresAt !== null && identity.user.expiresAt <= now) return "user_expired";
  return null;
}

// Presented key → its SHA-256, so an isolate hashes each key once rather than on every request.
// This holds plaintext keys, but only in the isolate's memory, which already sees every key it
// serves: never logged, persisted or sent anywhere. Only well-formed keys get here; FIFO-bounded.
const keyHashes = new Map<string, string>();
const KEY_HASHES_MAX = 10_000;

async function keyHashOf(key: string): Promise<string> {
  let hash = keyHashes.get(key);
  if (hash === undefined) {
    hash = await hashApiKey(key);
    if (keyHashes.size >= KEY_HASHES_MAX) keyHashes.delete(keyHashes.keys().next().value!);
    keyHashes.set(key, hash);
  }
  return hash;
}

export type ResolveResult = { ok: true; identity: ResolvedIdentity } | { ok: false; reason: AuthFailure; keyId?: string; userId?: string };

/**
 * Resolves a presented key to an identity: shape and checksum first (no I/O for garbage),
 * then the isolate cache, then D1. Warm keys never touch D1.
 */
export async function resolveApiKey(
  db: Database,
  cache: KeyCache,
  presented: string | undefined,
  opts: { ttlMs: number; negativeTtlMs: number; now?: number },
): Promise<ResolveResult> {
  if (!presented) return { ok: false, reason: "missing" };
  // A key in the memo was well-formed when it got there: skip the shape and checksum test.
  let hash = keyHashes.get(presented);
  if (hash === undefined) {
    if (!isWellFormedApiKey(presented)) return { ok: false, reason: "malformed" };
    hash = await keyHashOf(presented);
  }
  const now = opts.now ?? Date.now();
  let identity = cache.get(hash, now);
  if (identity === undefined) {
    const readAt = cache.generation;
    try {
      identity = await loadIdentityByHash(db, hash);
    } catch (err) {
      // Fail closed: a key we could not check is neither accepted nor called invalid (a 401 would
      // tell a client its good key is bad). Nothing is cached, so the next request asks D1 again.
      throw identityStoreFailed(err, "key resolution failed", [hash]);
    }
    // Not cached when an admin change purged the cache while the read was out.
    cache.set(hash, identity, identity ? opts.ttlMs : opts.negativeTtlMs, now, readAt);
  }
  if (!identity) return { ok: false, reason: "unknown" };
  const failure = identityFailure(identity, now);
  if (failure) return { ok: false, reason: failure, keyId: identity.key.id, userId: identity.user.id };
  return { ok: true, identity };
}

// key id → when this isolate last wrote its last_used_at.
const lastUsedWrites = new Map<string, number>();
/** last_used_at is precise to this much; it bounds D1 writes to one per key per minute per isolate. */
export const LAST_USED_RESOLUTION_MS = 60_000;

/**
 * Returns a promise that records a key's use in D1 when this isolate has not done so within
 * LAST_USED_RESOLUTION_MS, else null. Callers hand the promise to `waitUntil`.
 */
export function recordKeyUse(db: Database, keyId: string, now = Date.now()): Promise<unknown> | null {
  const last = lastUsedWrites.get(keyId);
  if (last !== undefined && now - last < LAST_USED_RESOLUTION_MS) return null;
  if (lastUsedWrites.size > 50_000) lastUsedWrites.clear();
  lastUsedWrites.set(keyId, now);
  return db
    .update(apiKeys)
    .set({ lastUsedAt: new Date(now) })
    .where(eq(apiKeys.id, keyId))
    .run()
    .catch((err: unknown) => console.error(JSON.stringify({ level: "warn", msg: "last_used_at write failed", keyId, error: String(err) })));
}
