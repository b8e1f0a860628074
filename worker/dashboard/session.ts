import { eq, lte } from "drizzle-orm";
import type { Database } from "../db";
import { adminSessions } from "../db/schema";
import { newId } from "../lib/ids";
import { adminAuditInsert, type AdminActor } from "../services/admin-audit";

/**
 * Dashboard sessions: a signed cookie AND a D1 row.
 *
 * The cookie holds `v1.<expiresAtMs>.<nonce>.<mac>`, where the MAC is HMAC-SHA256 under a key
 * derived from ADMIN_TOKEN. The row (admin_sessions, keyed by a hash of the nonce) is what makes
 * the session revocable. A request is signed in only when both hold:
 * - the MAC is checked first, so forged or tampered cookies cost no D1 read;
 * - the row must exist and be unexpired, so signing out (which deletes it) kills the session
 *   server-side: a cookie copied before sign-out no longer works anywhere;
 * - rotating ADMIN_TOKEN still signs every browser out at once (the derived key changes).
 * The cost is one D1 read per dashboard request, which is off the proxy's hot path.
 * The admin token itself never leaves the sign-in POST body: not in the cookie, a URL or a page.
 *
 * The CSRF token is a second MAC over the session's nonce, so it is per session, needs no
 * storage, and cannot be computed without the derived key.
 */

export const SESSION_TTL_MS = 8 * 60 * 60 * 1000;
const enc = new TextEncoder();

const b64url = (buf: ArrayBuffer | Uint8Array) =>
  btoa(String.fromCharCode(...new Uint8Array(buf)))
    .replaceAll("+", "-")
    .replaceAll("/", "_")
    .replace(/=+$/, "");

// One derived key per ADMIN_TOKEN value, for the life of the isolate.
const keys = new Map<string, Promise<CryptoKey>>();

function sessionKey(adminToken: string): Promise<CryptoKey> {
  let key = keys.get(adminToken);
  if (!key) {
    key = (async () => {
      const root = await crypto.subtle.importKey("raw", enc.encode(adminToken), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      // Domain-separated: the session key is not the admin token and cannot be turned back into it.
      const derived = await crypto.subtle.sign("HMAC", root, enc.encode("portcullis/dashboard-session/v1"));
      return crypto.subtle.importKey("raw", derived, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    })();
    keys.set(adminToken, key);
  }
  return key;
}

async function mac(adminToken: string, text: string): Promise<string> {
  return b64url(await crypto.subtle.sign("HMAC", await sessionKey(adminToken), enc.encode(text)));
}

export interface Session {
  nonce: string;
  expiresAt: number;
  /** The value every form of this session must post back as `_csrf`. */
  csrfToken: string;
}

/** A new session cookie value for a browser that just proved it holds the admin token. */
export async function createSession(adminToken: string, now = Date.now()): Promise<{ cookie: string; session: Session }> {
  const nonce = b64url(crypto.getRandomValues(new Uint8Array(18)));
  const expiresAt = now + SESSION_TTL_MS;
  const body = `v1.${expiresAt}.${nonce}`;
  const cookie = `${body}.${await mac(adminToken, body)}`;
  return { cookie, session: { nonce, expiresAt, csrfToken: await mac(adminToken, `csrf.${nonce}`) } };
}

/** The session a cookie value stands for, or null when it is malformed, forged or expired. */
export async function readSession(adminToken: string, cookie: string | undefined, now = Date.now()): Promise<Session | null> {
  const m = cookie ? /^v1\.(\d{1,16})\.([A-Za-z0-9_-]{24})\.([A-Za-z0-9_-]{43})$/.exec(cookie) : null;
  if (!m) return null;
  const [, exp, nonce, sig] = m as unknown as [string, string, string, string];
  const expected = await mac(adminToken, `v1.${exp}.${nonce}`);
  if (!constantTimeEqual(sig, expected)) return null;
  const expiresAt = Number(exp);
  if (!(expiresAt > now)) return null;
  return { nonce, expiresAt, csrfToken: await mac(adminToken, `csrf.${nonce}`) };
}

/** Compares two strings of equal-length MACs without an early exit. */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = enc.encode(a);
  const y = enc.encode(b);
  if (x.length !== y.length) return false;
  return crypto.subtle.timingSafeEqual(x, y);
}

/** A signed-in session: the cookie's claims plus its D1 row's id. */
export interface StoredSession extends Session {
  /** `ses_…`, as admin audit rows name it. */
  id: string;
}

async function nonceHash(nonce: string): Promise<string> {
  return b64url(await crypto.subtle.digest("SHA-256", enc.encode(nonce)));
}

/**
 * Starts a session for a browser that just proved it holds the admin token: the row and its
 * admin audit event (`session.create`) in one D1 transaction. Returns the cookie value to set.
 */
export async function startSession(db: Database, who: AdminActor, adminToken: string, clientIp: string | undefined, now = Date.now()): Promise<{ cookie: string; session: StoredSession }> {
  const { cookie, session } = await createSession(adminToken, now);
  const id = newId("session", now);
  const at = new Date(now);
  await db.batch([
    db.insert(adminSessions).values({ id, nonceHash: await nonceHash(session.nonce), clientIp: clientIp ?? null, createdAt: at, expiresAt: new Date(session.expiresAt) }),
    adminAuditInsert(db, who, { action: "session.create", targetType: "session", targetId: id, after: { clientIp: clientIp ?? null, expiresAt: new Date(session.expiresAt).toISOString() } }, at),
  ]);
  return { cookie, session: { ...session, id } };
}

/** The session a cookie stands for: signed, unexpired and not signed out (its row exists), or null. */
export async function resolveSession(db: Database, adminToken: string, cookie: string | undefined, now = Date.now()): Promise<StoredSession | null> {
  const session = await readSession(adminToken, cookie, now);
  if (!session) return null;
  const row = await db.query.adminSessions.findFirst({ columns: { id: true, expiresAt: true }, where: eq(adminSessions.nonceHash, await nonceHash(session.nonce)) });
  if (!row || row.expiresAt.getTime() <= now) return null;
  return { ...session, id: row.id };
}

/** Signs a session out server-side: deletes its row (with a `session.delete` audit event). */
export async function endSession(db: Database, who: AdminActor, session: StoredSession, now = Date.now()): Promise<void> {
  await db.batch([
    db.delete(adminSessions).where(eq(adminSessions.id, session.id)),
    adminAuditInsert(db, who, { action: "session.delete", targetType: "session", targetId: session.id, before: { expiresAt: new Date(session.expiresAt).toISOString() } }, new Date(now)),
  ]);
}

/** Deletes expired session rows (the scheduled handler runs it); returns how many. */
export async function pruneSessions(db: Database, now = Date.now()): Promise<number> {
  const res = await db.delete(adminSessions).where(lte(adminSessions.expiresAt, new Date(now)));
  return res.meta.changes ?? 0;
}
