import type { Context, MiddlewareHandler } from "hono";
import type { GatewayEnv } from "../env";
import { GatewayError } from "../errors";
import { sealChain } from "../audit/chain";
import { purgeIsolateCaches } from "../lib/ttl-cache";
import type { AdminActor } from "../services/admin-audit";

async function sha256(text: string): Promise<ArrayBuffer> {
  return crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
}

/**
 * Checks `Authorization: Bearer <ADMIN_TOKEN>`. Both sides are hashed first so the comparison
 * is constant-time and independent of the token's length.
 */
export const adminAuth = (): MiddlewareHandler<GatewayEnv> =>
  async function adminAuth(c, next) {
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer (\S+)$/i.exec(header.trim());
    const expected = c.var.services.env.ADMIN_TOKEN;
    const [given, want] = await Promise.all([sha256(m?.[1] ?? ""), sha256(expected)]);
    if (!m || !crypto.subtle.timingSafeEqual(given, want)) {
      throw new GatewayError("ADMIN_UNAUTHORIZED", "Send the admin token as `Authorization: Bearer <ADMIN_TOKEN>`.", {
        headers: { "www-authenticate": 'Bearer realm="portcullis-admin"' },
      });
    }
    await next();
  };

/** Admin mutations change identities: purge this isolate's key cache so it never serves the old state. */
export const purgeKeyCacheOnMutation = (): MiddlewareHandler<GatewayEnv> =>
  async function purgeKeyCacheOnMutation(c, next) {
    await next();
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      c.var.services.keyCache.purge();
      // JWT-user and origin-secret caches too: the change must show at once where it landed.
      purgeIsolateCaches();
    }
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

/** There is one admin credential today; the actor names it so audit rows stay meaningful when more arrive. */
export const actorOf = (c: Context<GatewayEnv>): AdminActor => ({ actor: "admin-token", requestId: c.var.requestId });
