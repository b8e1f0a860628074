import { sql } from "drizzle-orm";
import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** Lifecycle of a proxy user; a disabled user's keys all stop working at once. */
export const userStatuses = ["active", "disabled"] as const;
export type UserStatus = (typeof userStatuses)[number];

/**
 * A proxy user: the identity a consumer (service, team, partner) holds at the gateway.
 * Timestamps are Unix milliseconds so expiry checks on the hot path are integer compares.
 */
export const proxyUsers = sqliteTable(
  "proxy_users",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull().unique(),
    description: text("description"),
    group: text("group"),
    status: text("status", { enum: userStatuses }).notNull().default("active"),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, unknown>>().notNull().default(sql`'{}'`),
    expiresAt: integer("expires_at", { mode: "timestamp_ms" }),
    /** CIDRs (IPv4 or IPv6); null means any address. */
    allowedIps: text("allowed_ips", { mode: "json" }).$type<string[]>(),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [index("proxy_users_group_idx").on(t.group), index("proxy_users_status_idx").on(t.status)],
);

export type ProxyUserRow = typeof proxyUsers.$inferSelect;
export type NewProxyUserRow = typeof proxyUsers.$inferInsert;
