import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { proxyUsers } from "./proxy-users";

/**
 * An API key of a proxy user. The plaintext is shown once and never stored: `hash` is its
 * SHA-256 (hex) and `start` a short visible prefix so humans can tell keys apart.
 */
export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => proxyUsers.id, { onDelete: "cascade" }),
    name: text("name"),
    hash: text("hash").notNull(),
    start: text("start").notNull(),
    /** Optional scope-down: the key grants only what both this list and the user's roles grant. */
    permissions: text("permissions", { mode: "json" }).$type<string[]>(),
    expiresAt: integer("expires_at", { mode: "timestamp_ms" }),
    revokedAt: integer("revoked_at", { mode: "timestamp_ms" }),
    /** Written at most once a minute per key per isolate, never on every request. */
    lastUsedAt: integer("last_used_at", { mode: "timestamp_ms" }),
    /** The key this one replaced by rotation; its index finds a key's successor (a key is rotated once). */
    rotatedFrom: text("rotated_from"),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [uniqueIndex("api_keys_hash_idx").on(t.hash), index("api_keys_user_idx").on(t.userId), index("api_keys_rotated_from_idx").on(t.rotatedFrom)],
);

export type ApiKeyRow = typeof apiKeys.$inferSelect;
