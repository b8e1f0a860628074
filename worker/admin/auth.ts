import type { Context, MiddlewareHandler } from "hono";
import type { GatewayEnv } from "../env";
import { GatewayError } from "../errors";
import { sealChain } from "../audit/chain";
import { purgeIsolateCaches } from "../lib/ttl-cache";
import type { AdminActor } from "../services/admin-audit";
import { reserveSignInAttempt, signInThrottledFor, signInThrottleOptions } from "../services/sign-in-throttle";
import { ipBucket } from "../limits/engine";

async function sha256(text: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
}

/**
 * Whether `given` is the admin token. Both sides are hashed first so the comparison is
 * constant-time and independent of the token's length (the dashboard's sign-in uses it too).
 */
export async function isAdminToken(given: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all([sha256(given), sha256(expected)]);
  return crypto.subtle.timingSafeEqual(a, b);
}

/**
 * Which admin token `given` is: ADMIN_TOKEN, ADMIN_TOKEN_PREVIOUS (a rotation under way) or
 * neither. Both are always compared, so the time taken says nothing about which one matched.
 */
export async function whichAdminToken(given: string, env: { ADMIN_TOKEN: string; ADMIN_TOKEN_PREVIOUS?: string | undefined }): Promise<"admin-token" | "admin-token-previous" | null> {
  const [current, previous] = await Promise.all([isAdminToken(given, env.ADMIN_TOKEN), env.ADMIN_TOKEN_PREVIOUS ? isAdminToken(given, env.ADMIN_TOKEN_PREVIOUS) : false]);
  return current ? "admin-token" : previous ? "admin-token-previous" : null;
}

/**
 * Checks `Authorization: Bearer <ADMIN_TOKEN>`. A wrong token counts as a failed admin sign-in of
 * its client address, in the same count as the dashboard's sign-in form (both guess the same
 * token; see worker/services/sign-in-throttle.ts). Once an address has used up its failures,
 * every token it sends gets 429 `ADMIN_THROTTLED`, the right one too, so the answer says nothing
 * about the token. A missing or non-bearer header is not a guess and is not counted.
 */
export const adminAuth = (): MiddlewareHandler<GatewayEnv> =>
  async function adminAuth(c, next) {
    const { db, env } = c.var.services;
    const m = /^Bearer (\S+)$/i.exec((c.req.header("authorization") ?? "").trim());
    const which = m ? await whichAdminToken(m[1]!, env) : null;
    const ok = which !== null;
    if (m) {
      const opts = signInThrottleOptions(env);
      const slot = ok ? undefined : await reserveSignInAttempt(db, c.var.clientIp, opts);
      const retryAfter = slot ? (slot.allowed ? undefined : slot.retryAfterSeconds) : await signInThrottledFor(db, c.var.clientIp, opts);
      // Someone may be guessing: say so where operators look, one line per refusal (never what was sent).
      const log = { level: "warn", requestId: c.var.requestId, client: ipBucket(c.var.clientIp) };
      if (retryAfter) {
        console.warn(JSON.stringify({ ...log, msg: "admin API throttled", retryAfterSeconds: retryAfter }));
        throw new GatewayError("ADMIN_THROTTLED", `Too many wrong admin tokens from this address; try again in ${retryAfter} s.`, { headers: { "retry-after": String(retryAfter) } });
      }
      if (slot) console.warn(JSON.stringify({ ...log, msg: "admin token rejected" }));
    }
    if (!ok) {
      throw new GatewayError("ADMIN_UNAUTHORIZED", "Send the admin token as `Authorization: Bearer <ADMIN_TOKEN>`.", {
        headers: { "www-authenticate": 'Bearer realm="portcullis-admin"' },
      });
    }
    // During a rotation, who still calls with the old token is what the operator needs to find.
    if (which === "admin-token-previous") console.warn(JSON.stringify({ level: "warn", msg: "admin token previous used", requestId: c.var.requestId, client: ipBucket(c.var.clientIp) }));
    c.set("adminActor", which);
    await next();
  };

/**
 * Admin mutations change identities: purge this isolate's caches (keys, JWT users, origin secrets)
 * so it never serves the old state. The key cache is a TtlCache, so `purgeIsolateCaches` covers it.
 */
export const purgeKeyCacheOnMutation = (): MiddlewareHandler<GatewayEnv> =>
  async function purgeKeyCacheOnMutation(c, next) {
    await next();
    if (c.req.method !== "GET" && c.req.method !== "HEAD") purgeIsolateCaches();
  };

/**
 * Seals the admin audit chain after a mutation, before the response goes out: the mutation's
 * batch assigned its row's chain position; sealing hashes it. A seal failure is logged, never
 * turned into an error (the change and its row are already stored; the next seal or the cron
 * completes it).
 */
export const sealAdminAuditOnMutation = (): MiddlewareHandler<GatewayEnv> =>
  async function sealAdminAuditOnMutation(c, next) {
    await next();
    if (c.req.method === "GET" || c.req.method === "HEAD" || c.res.status >= 400) return;
    await sealChain(c.env.DB, "admin").catch((err: unknown) =>
      console.error(JSON.stringify({ level: "warn", msg: "admin audit seal failed", requestId: c.var.requestId, error: String(err) })),
    );
  };

/** The admin token the call used: `admin-token`, or `admin-token-previous` while a rotation is under way. */
export const actorOf = (c: Context<GatewayEnv>): AdminActor => ({ actor: c.get("adminActor") ?? "admin-token", requestId: c.var.requestId });
