import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/** Who a secret applies to: everyone, one proxy user, or one group. */
export const secretScopes = ["global", "user", "group"] as const;
export type SecretScope = (typeof secretScopes)[number];

/**
 * Origin credentials, encrypted with AES-256-GCM under the SECRETS_KEY Worker secret. The
 * plaintext never touches D1, a response, a log line or an audit row. One row per
 * (name, scope): a PUT replaces the ciphertext and bumps `version`.
 */
export const originSecrets = sqliteTable(
  "origin_secrets",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    scopeType: text("scope_type", { enum: secretScopes }).notNull(),
    /** The user id or group name the secret is bound to; "" for global. */
    scopeId: text("scope_id").notNull().default(""),
    version: integer("version").notNull(),
    /** base64 AES-GCM ciphertext (with tag); the AAD binds it to name and scope. */
    ciphertext: text("ciphertext").notNull(),
    /** base64 96-bit nonce, fresh for every write. */
    iv: text("iv").notNull(),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    updatedAt: integer("updated_at", { mode: "timestamp_ms" }).notNull(),
  },
  (t) => [uniqueIndex("origin_secrets_scope_idx").on(t.name, t.scopeType, t.scopeId), index("origin_secrets_name_idx").on(t.name)],
);

export type OriginSecretRow = typeof originSecrets.$inferSelect;
