/**
 * Dashboard sessions, stateless: the cookie holds `v1.<expiresAtMs>.<nonce>.<mac>`, where the
 * MAC is HMAC-SHA256 under a key derived from ADMIN_TOKEN. So:
 * - nothing to store in D1 and nothing to clean up;
 * - rotating ADMIN_TOKEN signs every browser out at once (the derived key changes);
 * - a stolen cookie is good until it expires (SESSION_TTL_MS) — it is HttpOnly, SameSite=Strict
 *   and Secure outside local dev, and sign-out clears it.
 * The admin token itself never leaves the sign-in POST body: not in the cookie, a URL or a page.
 *
 * The CSRF token is a second MAC over the session's nonce, so it is per session, needs no
 * storage either, and cannot be computed without the derived key.
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
