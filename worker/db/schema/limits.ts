import { integer, primaryKey, sqliteTable, text } from "drizzle-orm/sqlite-core";
import { proxyUsers } from "./proxy-users";
import { roles } from "./roles";

/**
 * Per-user overrides of a named limit (the `name` of a rate-limit or quota plugin in
 * gateway.config.ts). A user override beats every role override; rows go with the user.
 */
export const userLimits = sqliteTable(
  "user_limits",
  {
    userId: text("user_id")
      .notNull()
      .references(() => proxyUsers.id, { onDelete: "cascade" }),
    limitName: text("limit_name").notNull(),
    /** Requests per window (rate limits) or units per period (quotas). */
    limit: integer("limit").notNull(),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.userId, t.limitName] })],
);

/**
 * Per-role overrides of a named limit. A user holding several roles that override the same
 * limit gets the most generous of them (roles grant; they do not restrict each other).
 */
export const roleLimits = sqliteTable(
  "role_limits",
  {
    roleId: text("role_id")
      .notNull()
      .references(() => roles.id, { onDelete: "cascade" }),
    limitName: text("limit_name").notNull(),
    limit: integer("limit").notNull(),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.roleId, t.limitName] })],
);

export type UserLimitRow = typeof userLimits.$inferSelect;
export type RoleLimitRow = typeof roleLimits.$inferSelect;
