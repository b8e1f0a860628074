import { and, asc, eq, gt, or, sql } from "drizzle-orm";
import type { Database } from "../db";
import { originSecrets, proxyUsers, type OriginSecretRow, type SecretScope } from "../db/schema";
import { GatewayError } from "../errors";
import { newId } from "../lib/ids";
import { TtlCache } from "../lib/ttl-cache";
import { adminAuditInsert, type AdminActor } from "./admin-audit";
import { decodeCursor, page } from "./pagination";

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
const keys = new WeakMap<object, Promise<CryptoKey>>();
const b64 = (bytes: ArrayBuffer | Uint8Array) => btoa(String.fromCharCode(...new Uint8Array(bytes)));
const unb64 = (text: string) => Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));

/** The AES-GCM key from SECRETS_KEY (imported once per isolate, not extractable). */
function encryptionKey(env: { SECRETS_KEY?: string | undefined }): Promise<CryptoKey> {
  const raw = env.SECRETS_KEY;
  if (!raw) throw new GatewayError("GATEWAY_MISCONFIGURED", "The origin-secret store needs the SECRETS_KEY Worker secret.");
  let key = keys.get(env);
  if (!key) {
    key = crypto.subtle.importKey("raw", unb64(raw.trim()), { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
    keys.set(env, key);
  }
  return key;
}

// The AAD ties a ciphertext to its row's name and scope: a ciphertext copied to another row
// (e.g. a partner's secret moved to the global slot) fails to decrypt instead of being served.
const aad = (name: string, scopeType: string, scopeId: string) => new TextEncoder().encode(`portcullis-secret:v1:${name}:${scopeType}:${scopeId}`);

async function encrypt(env: { SECRETS_KEY?: string | undefined }, value: string, name: string, scopeType: string, scopeId: string) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad(name, scopeType, scopeId) }, await encryptionKey(env), new TextEncoder().encode(value));
  return { ciphertext: b64(ct), iv: b64(iv) };
}

async function decrypt(env: { SECRETS_KEY?: string | undefined }, row: OriginSecretRow): Promise<string> {
  try {
    const pt = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: unb64(row.iv), additionalData: aad(row.name, row.scopeType, row.scopeId) },
      await encryptionKey(env),
      unb64(row.ciphertext),
    );
    return new TextDecoder().decode(pt);
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    console.error(JSON.stringify({ level: "error", msg: "origin secret does not decrypt (wrong SECRETS_KEY or tampered row)", secret: row.name, scope: row.scopeType }));
    throw new GatewayError("GATEWAY_MISCONFIGURED", "An origin secret could not be decrypted.");
  }
}

// ── admin operations ───────────────────────────────────────────────────────────
/**
 * Creates or replaces a secret (name + binding), bumping its version; writes the admin audit row
 * (name, binding, version — never the value) in the same batch.
 */
export async function putSecret(db: Database, env: { SECRETS_KEY?: string | undefined }, who: AdminActor, name: string, input: SecretBinding & { value: string }): Promise<SecretView> {
  const { scopeType, scopeId } = scopeOf(input);
  if (scopeType === "user") {
    const user = await db.query.proxyUsers.findFirst({ where: eq(proxyUsers.id, scopeId), columns: { id: true } });
    if (!user) throw new GatewayError("USER_NOT_FOUND", `No proxy user with id "${scopeId}".`);
  }
  const now = new Date();
  const existing = await db.query.originSecrets.findFirst({
    where: and(eq(originSecrets.name, name), eq(originSecrets.scopeType, scopeType), eq(originSecrets.scopeId, scopeId)),
  });
  const { ciphertext, iv } = await encrypt(env, input.value, name, scopeType, scopeId);
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
  const view = secretView(row);
  await db.batch([
    db
      .insert(originSecrets)
      .values(row)
      .onConflictDoUpdate({
        target: [originSecrets.name, originSecrets.scopeType, originSecrets.scopeId],
        set: { ciphertext, iv, version: sql`${originSecrets.version} + 1`, updatedAt: now },
      }),
    adminAuditInsert(db, who, { action: existing ? "secret.rotate" : "secret.create", targetType: "secret", targetId: row.id, before: existing ? { ...secretView(existing) } : null, after: { ...view } }, now),
  ]);
  return view;
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

export async function deleteSecret(db: Database, who: AdminActor, name: string, binding: SecretBinding): Promise<void> {
  const { scopeType, scopeId } = scopeOf(binding);
  const where = and(eq(originSecrets.name, name), eq(originSecrets.scopeType, scopeType), eq(originSecrets.scopeId, scopeId));
  const existing = await db.query.originSecrets.findFirst({ where });
  if (!existing) throw new GatewayError("SECRET_NOT_FOUND", `No ${scopeType} secret named "${name}"${scopeId ? ` for "${scopeId}"` : ""}.`);
  const now = new Date();
  await db.batch([
    db.delete(originSecrets).where(eq(originSecrets.id, existing.id)),
    adminAuditInsert(db, who, { action: "secret.delete", targetType: "secret", targetId: existing.id, before: { ...secretView(existing) } }, now),
  ]);
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
  env: { SECRETS_KEY?: string | undefined; SECRET_CACHE_TTL_SECONDS: number },
  name: string,
  caller: { userId?: string | undefined; group?: string | null | undefined },
): Promise<string | null> {
  const cacheKey = secretCacheKey(name, caller);
  const hit = resolved.get(cacheKey);
  if (hit !== undefined) return hit;
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
  resolved.set(cacheKey, value, env.SECRET_CACHE_TTL_SECONDS * 1000);
  return value;
}
