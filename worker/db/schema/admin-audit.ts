import { index, integer, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/**
 * One row per admin mutation. `before`/`after` are redacted snapshots: key hashes,
 * plaintext keys and secret values never reach this table.
 *
 * Tamper evidence: one hash chain over the whole table. `seq` is assigned inside the
 * mutation's own transaction (max + 1), `prev_hash`/`hash` by the sealer right after
 * (worker/audit/chain.ts), so `adminAuditInsert` stays a plain statement for any `db.batch`.
 */
export const adminAudit = sqliteTable(
  "admin_audit",
  {
    id: text("id").primaryKey(),
    createdAt: integer("created_at", { mode: "timestamp_ms" }).notNull(),
    actor: text("actor").notNull(),
    action: text("action").notNull(),
    targetType: text("target_type").notNull(),
    targetId: text("target_id").notNull(),
    requestId: text("request_id").notNull(),
    before: text("before", { mode: "json" }).$type<Record<string, unknown> | null>(),
    after: text("after", { mode: "json" }).$type<Record<string, unknown> | null>(),
    seq: integer("seq"),
    prevHash: text("prev_hash"),
    hash: text("hash"),
  },
  (t) => [
    index("admin_audit_created_idx").on(t.createdAt),
    index("admin_audit_target_idx").on(t.targetType, t.targetId),
    uniqueIndex("admin_audit_seq_idx").on(t.seq),
  ],
);

export type AdminAuditRow = typeof adminAudit.$inferSelect;
