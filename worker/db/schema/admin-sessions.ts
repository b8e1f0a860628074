import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Dashboard sessions. The cookie is still signed (worker/dashboard/session.ts), so a forged one
 * is refused without a D1 read; this table is what makes sign-out real: a session is valid only
 * while its row exists, and signing out deletes it, so a copied cookie stops working at once.
 * Rows hold no part of the cookie that could be replayed: only a SHA-256 of its nonce.
 */
export const adminSessions = sqliteTable(
  "admin_sessions",
  {
    /** `ses_…`: what admin audit rows name (sign-in, sign-out). */
    id: text("id").primaryKey(),
    /** base64url SHA-256 of the cookie's nonce. */
    nonceHash: text("nonce_hash").notNull().unique(),
    /** `CF-Connecting-IP` at sign-in, for the operator's own review. */
    clientIp: text("client_ip"),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    expiresAt: integer("expires_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [index("admin_sessions_expires_at_idx").on(t.expiresAt)],
);

/**
 * Failed dashboard sign-ins per client address (IPv4, or IPv6 /64) in a fixed window. One row
 * per address, updated with one atomic upsert per attempt; the scheduled handler deletes rows
 * whose window has passed.
 */
export const adminSignInFailures = sqliteTable("admin_sign_in_failures", {
  /** The client bucket, as the limiter counts IPs (`ip:203.0.113.9`, `ip6:2001db8…::/64`). */
  client: text("client").primaryKey(),
  windowStart: integer("window_start", { mode: "timestamp_ms" }).notNull(),
  /** Attempts counted in the window: failures, plus attempts still being checked. */
  failures: integer("failures").notNull(),
});

export type AdminSessionRow = typeof adminSessions.$inferSelect;
