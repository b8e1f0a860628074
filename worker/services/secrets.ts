import { and, asc, eq, exists, gt, notExists, or, sql } from "drizzle-orm";
import type { Database } from "../db";
import { originSecrets, type OriginSecretRow, type SecretScope } from "../db/schema";
import { GatewayError } from "../errors";
import { newId } from "../lib/ids";
import { TtlCache } from "../lib/ttl-cache";
import { adminAuditInsert, type AdminActor } from "./admin-audit";
import { decodeCursor, page } from "./pagination";
import { findUser, guard, userExists } from "./users";

/** Secret names as used in templates (`{secret:NAME}`). */
export const SECRET_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
/** Values go into HTTP headers: refuse what would split or truncate a header. */
export const UNSAFE_HEADER_CHARS = /[\r\n\0]/;
export const MAX_SECRET_BYTES = 8192;

/** What the admin API shows of a secret: never the value. */
export interface SecretView {
  name: string;
  scope: SecretScope;
  userId: string | null;
  group: string | null;
  version: number;
  createdAt: string;
  updatedAt: string;
}

export const secretView = (r: OriginSecretRow): SecretView => ({
  name: r.name,
  scope: r.scopeType,
  userId: r.scopeType === "user" ? r.scopeId : null,
  group: r.scopeType === "group" ? r.scopeId : null,
  version: r.version,
  createdAt: r.createdAt.toISOString(),
  updatedAt: r.updatedAt.toISOString(),
});

export interface SecretBinding {
  userId?: string | undefined;
  group?: string | undefined;
}

function scopeOf(b: SecretBinding): { scopeType: SecretScope; scopeId: string } {
  if (b.userId && b.group) throw new GatewayError("VALIDATION_FAILED", "Bind a secret to a user or a group, not both.", { errors: [{ path: "group", message: "not with userId" }] });
  if (b.userId) return { scopeType: "user", scopeId: b.userId };
  if (b.group) return { scopeType: "group", scopeId: b.group };
  return { scopeType: "global", scopeId: "" };
}

// ── encryption ─────────────────────────────────────────────────────────────────
/** The bindings encryption reads: the key, and during a key rotation the key it replaced. */
type KeyEnv = { SECRETS_KEY?: string | undefined; SECRETS_KEY_PREVIOUS?: string | undefined };

const keys = new WeakMap<object, Map<string, Promise<CryptoKey>>>();
const b64 = (bytes: ArrayBuffer | Uint8Array) => btoa(String.fromCharCode(...new Uint8Array(bytes)));
const unb64 = (text: string) => Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));

/** An AES-GCM key from a binding (imported once per isolate, not extractable); undefined when unset. */
function aesKey(env: KeyEnv, name: keyof KeyEnv): Promise<CryptoKey> | undefined {
  const raw = env[name];
  if (!raw) return undefined;
  let held = keys.get(env);
  if (!held) keys.set(env, (held = new Map()));
  let key = held.get(name);
  if (!key) held.set(name, (key = crypto.subtle.importKey("raw", unb64(raw.trim()), { name: "AES-GCM" }, false, ["encrypt", "decrypt"])));
  return key;
}

/** The store's key, SECRETS_KEY. */
function encryptionKey(env: KeyEnv): Promise<CryptoKey> {
  const key = aesKey(env, "SECRETS_KEY");
  if (!key) throw new GatewayError("GATEWAY_MISCONFIGURED", "The origin-secret store needs the SECRETS_KEY Worker secret.");
  return key;
}

// The AAD ties a ciphertext to its row's name and scope: a ciphertext copied to another row
// (e.g. a partner's secret moved to the global slot) fails to decrypt instead of being served.
const aad = (name: string, scopeType: string, scopeId: string) => new TextEncoder().encode(`portcullis-secret:v1:${name}:${scopeType}:${scopeId}`);

async function encrypt(env: KeyEnv, value: string, name: string, scopeType: string, scopeId: string) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad(name, scopeType, scopeId) }, await encryptionKey(env), new TextEncoder().encode(value));
  return { ciphertext: b64(ct), iv: b64(iv) };
}

/** The row's value under one key; throws (OperationError) when the key is not the one that sealed it. */
async function openWith(key: CryptoKey, row: OriginSecretRow): Promise<string> {
  const pt = await crypto.subtle.decrypt({ name: "AES-GCM", iv: unb64(row.iv), additionalData: aad(row.name, row.scopeType, row.scopeId) }, key, unb64(row.ciphertext));
  return new TextDecoder().decode(pt);
}

/**
 * The row's value and the key that opened it: SECRETS_KEY, else SECRETS_KEY_PREVIOUS (a row
 * not yet re-encrypted after a key rotation); null when neither does (the wrong keys, or a
 * tampered row). AES-GCM's tag tells the keys apart, so no key id is stored with the row.
 */
async function open(env: KeyEnv, row: OriginSecretRow): Promise<{ value: string; under: "current" | "previous" } | null> {
  const tries = [["current", encryptionKey(env)], ["previous", aesKey(env, "SECRETS_KEY_PREVIOUS")]] as const;
  for (const [under, key] of tries) {
    try {
      if (key) return { value: await openWith(await key, row), under };
    } catch {
      // Not this key: try the next.
    }
  }
  return null;
}

const UNDECRYPTABLE = "origin secret does not decrypt (wrong SECRETS_KEY or tampered row)";

async function decrypt(env: KeyEnv, row: OriginSecretRow): Promise<string> {
  const opened = await open(env, row);
  if (opened) return opened.value;
  console.error(JSON.stringify({ level: "error", msg: UNDECRYPTABLE, secret: row.name, scope: row.scopeType }));
  throw new GatewayError("GATEWAY_MISCONFIGURED", "An origin secret could not be decrypted.");
}

/** What one page of a rekey did: counts, and the secrets neither key opens (metadata only). */
export interface RekeyReport {
  /** Secrets this call examined (one page, in id order). */
  total: number;
  rekeyed: number;
  alreadyCurrent: number;
  undecryptable: SecretView[];
  /** Pass as `cursor` to rekey the next page; null when this was the last. */
  nextCursor: string | null;
}

/** A rekey page: small enough that one call stays within D1's queries per invocation on every plan. */
export const REKEY_PAGE = { default: 25, max: 100 } as const;

/**
 * Re-encrypts under SECRETS_KEY every secret of one page (ids after `cursor`, up to `limit`)
 * still sealed with SECRETS_KEY_PREVIOUS — the second step of rotating the store's key (README,
 * "Origin secrets"); callers follow `nextCursor` to the end. Paged because a call's work must
 * be bounded: a Worker invocation may run only so many D1 queries (50 on the Free plan, 1,000
 * on Paid) and so much CPU, and a store of any size must still rotate. Values, versions and
 * bindings are unchanged. Each update only applies if the row is still the one that was read,
 * so a PUT racing the rekey is never overwritten with the older value. One `secret.rekey` admin
 * audit row per page holds its counts and the names of secrets neither key opens (those rows are
 * left as they are).
 */
export async function rekeySecrets(db: Database, env: KeyEnv, who: AdminActor, q: { limit: number; cursor?: string | undefined }): Promise<RekeyReport> {
  const read = await db
    .select()
    .from(originSecrets)
    .where(q.cursor ? gt(originSecrets.id, decodeCursor(q.cursor)) : undefined)
    .orderBy(asc(originSecrets.id))
    .limit(q.limit + 1);
  const { rows, nextCursor } = page(read, q.limit);
  const updates = [];
  const undecryptable: SecretView[] = [];
  let alreadyCurrent = 0;
  const now = new Date();
  for (const row of rows) {
    const opened = await open(env, row);
    if (!opened) undecryptable.push(secretView(row));
    else if (opened.under === "current") alreadyCurrent++;
    else {
      const { ciphertext, iv } = await encrypt(env, opened.value, row.name, row.scopeType, row.scopeId);
      updates.push(
        db
          .update(originSecrets)
          .set({ ciphertext, iv, updatedAt: now })
          .where(and(eq(originSecrets.id, row.id), eq(originSecrets.version, row.version), eq(originSecrets.ciphertext, row.ciphertext))),
      );
    }
  }
  // Counted as read: a row a racing PUT replaced is not updated here, but that PUT sealed it with
  // SECRETS_KEY too, so every counted row ends under the new key either way.
  const rekeyed = updates.length;
  const after = { rekeyed, alreadyCurrent, undecryptable: undecryptable.map((u) => u.name), first: rows[0]?.id ?? null, last: rows.at(-1)?.id ?? null, more: nextCursor !== null };
  await db.batch([adminAuditInsert(db, who, { action: "secret.rekey", targetType: "secret", targetId: "all", after }, now), ...updates]);
  for (const u of undecryptable) console.error(JSON.stringify({ level: "error", msg: UNDECRYPTABLE, secret: u.name, scope: u.scope }));
  return { total: rows.length, rekeyed, alreadyCurrent, undecryptable, nextCursor };
}

// ── admin operations ───────────────────────────────────────────────────────────
/**
 * Creates or replaces a secret (name + binding), bumping its version; writes the admin audit row
 * (name, binding, version — never the value) in the same batch.
 */
export async function putSecret(db: Database, env: KeyEnv, who: AdminActor, name: string, input: SecretBinding & { value: string }): Promise<SecretView> {
  const { scopeType, scopeId } = scopeOf(input);
  if (scopeType === "user") await findUser(db, scopeId);
  const where = and(eq(originSecrets.name, name), eq(originSecrets.scopeType, scopeType), eq(originSecrets.scopeId, scopeId));
  const { ciphertext, iv } = await encrypt(env, input.value, name, scopeType, scopeId);
  // Optimistic: the batch runs only while the secret is as read (absent, or at the version read)
  // and its user still exists, so the answer and the audit row (create or rotate, id, version)
  // are what was stored. Two PUTs racing to create a secret: the second reads again and rotates.
  for (let attempt = 1; ; attempt++) {
    const now = new Date();
    const existing = await db.query.originSecrets.findFirst({ where });
    const row: OriginSecretRow = {
      id: existing?.id ?? newId("secret", now.getTime()),
      name,
      scopeType,
      scopeId,
      version: (existing?.version ?? 0) + 1,
      ciphertext,
      iv,
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    };
    const asRead = existing ? exists(db.select({ id: originSecrets.id }).from(originSecrets).where(and(eq(originSecrets.id, existing.id), eq(originSecrets.version, existing.version)))) : notExists(db.select({ id: originSecrets.id }).from(originSecrets).where(where));
    try {
      const [, [stored]] = await db.batch([
        guard(db, and(asRead, scopeType === "user" ? userExists(db, scopeId) : undefined)),
        db
          .insert(originSecrets)
          .values(row)
          .onConflictDoUpdate({
            target: [originSecrets.name, originSecrets.scopeType, originSecrets.scopeId],
            set: { ciphertext, iv, version: sql`${originSecrets.version} + 1`, updatedAt: now },
          })
          .returning(),
        adminAuditInsert(db, who, { action: existing ? "secret.rotate" : "secret.create", targetType: "secret", targetId: row.id, before: existing ? { ...secretView(existing) } : null, after: { ...secretView(row) } }, now),
      ]);
      return secretView(stored!);
    } catch (err) {
      // The user deleted meanwhile: 404. The secret changed meanwhile: read it again.
      if (scopeType === "user") await findUser(db, scopeId);
      if (attempt === 3) throw err;
    }
  }
}

export async function listSecrets(db: Database, q: { limit: number; cursor?: string | undefined; name?: string | undefined }) {
  const rows = await db
    .select()
    .from(originSecrets)
    .where(and(q.cursor ? gt(originSecrets.id, decodeCursor(q.cursor)) : undefined, q.name ? eq(originSecrets.name, q.name) : undefined))
    .orderBy(asc(originSecrets.id))
    .limit(q.limit + 1);
  const { rows: pageRows, nextCursor } = page(rows, q.limit);
  return { data: pageRows.map(secretView), nextCursor };
}

/**
 * Deletes a secret. The batch runs only while the secret is at the version read, so the audit
 * row names the version that was deleted (a PUT meanwhile: read again), and a DELETE that another
 * one overtook is a 404 rather than a second secret.delete of nothing.
 */
export async function deleteSecret(db: Database, who: AdminActor, name: string, binding: SecretBinding): Promise<void> {
  const { scopeType, scopeId } = scopeOf(binding);
  const where = and(eq(originSecrets.name, name), eq(originSecrets.scopeType, scopeType), eq(originSecrets.scopeId, scopeId));
  for (let attempt = 1; ; attempt++) {
    const existing = await db.query.originSecrets.findFirst({ where });
    if (!existing) throw new GatewayError("SECRET_NOT_FOUND", `No ${scopeType} secret named "${name}"${scopeId ? ` for "${scopeId}"` : ""}.`);
    const now = new Date();
    try {
      await db.batch([
        guard(db, exists(db.select({ id: originSecrets.id }).from(originSecrets).where(and(eq(originSecrets.id, existing.id), eq(originSecrets.version, existing.version))))),
        db.delete(originSecrets).where(eq(originSecrets.id, existing.id)),
        adminAuditInsert(db, who, { action: "secret.delete", targetType: "secret", targetId: existing.id, before: { ...secretView(existing) } }, now),
      ]);
      return;
    } catch (err) {
      // Deleted or rotated meanwhile: read it again (gone: 404 above).
      if (attempt === 3) throw err;
    }
  }
}

// ── hot path ───────────────────────────────────────────────────────────────────
/** name + caller → plaintext (or null: none bound). Freshness bounds how long a rotation takes to reach an isolate. */
const resolved = new TtlCache<string | null>(5_000);

/**
 * The secret `name` as it applies to a caller: bound to their proxy user, else to their group,
 * else global; null when none exists. One D1 query per (name, user, group) per cache TTL.
 *
 * Guarantee: a PUT or DELETE is visible at once in the isolate that served it (admin mutations
 * purge this cache) and everywhere else within SECRET_CACHE_TTL_SECONDS.
 */
const secretCacheKey = (name: string, caller: { userId?: string | undefined; group?: string | null | undefined }) => `${name}\u0000${caller.userId ?? ""}\u0000${caller.group ?? ""}`;

/**
 * The isolate's cached resolution of `name` for this caller, without I/O: the value, null (known
 * to be unset), or undefined when not cached (call resolveSecret). Lets the request path skip an
 * await per secret while the cache is warm.
 */
export function cachedSecret(name: string, caller: { userId?: string | undefined; group?: string | null | undefined }): string | null | undefined {
  return resolved.get(secretCacheKey(name, caller));
}

export async function resolveSecret(
  db: Database,
  env: KeyEnv & { SECRET_CACHE_TTL_SECONDS: number },
  name: string,
  caller: { userId?: string | undefined; group?: string | null | undefined },
): Promise<string | null> {
  const cacheKey = secretCacheKey(name, caller);
  const hit = resolved.get(cacheKey);
  if (hit !== undefined) return hit;
  const readAt = resolved.generation;
  const scopes = [and(eq(originSecrets.scopeType, "global"), eq(originSecrets.scopeId, ""))];
  if (caller.userId) scopes.push(and(eq(originSecrets.scopeType, "user"), eq(originSecrets.scopeId, caller.userId)));
  if (caller.group) scopes.push(and(eq(originSecrets.scopeType, "group"), eq(originSecrets.scopeId, caller.group)));
  const rows = await db
    .select()
    .from(originSecrets)
    .where(and(eq(originSecrets.name, name), or(...scopes)));
  const rank = { user: 0, group: 1, global: 2 } as const;
  const best = rows.sort((a, b) => rank[a.scopeType] - rank[b.scopeType])[0];
  const value = best ? await decrypt(env, best) : null;
  // Not cached when a PUT/DELETE purged the cache while this read was out: it may predate it.
  resolved.set(cacheKey, value, env.SECRET_CACHE_TTL_SECONDS * 1000, Date.now(), readAt);
  return value;
}
