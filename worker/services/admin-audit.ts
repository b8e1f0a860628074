import { sql } from "drizzle-orm";
import type { Database } from "../db";
import { adminAudit } from "../db/schema";
import { newId } from "../lib/ids";

/** Who did it and under which request; every admin mutation carries this into its audit row. */
export interface AdminActor {
  /** `admin-token` for the admin API today; `system:<job>` for scheduled jobs (e.g. `system:auto-revoke`). */
  actor: string;
  requestId: string;
}

/**
 * What an admin audit row can be about. Features that add mutable state (limits, secrets, …)
 * extend this list and use `adminAuditInsert` in the same `db.batch` as their change.
 */
export type AdminTargetType = "user" | "role" | "key" | "limit" | "secret" | "config" | "session";

export interface AdminEvent {
  /** `<target>.<verb>`, e.g. `user.update`, `key.revoke`, `limit.set`, `secret.rotate`. */
  action: string;
  targetType: AdminTargetType;
  targetId: string;
  /** Snapshot before the change (null for creations). Build it without secrets; redact() is the safety net. */
  before?: object | null;
  /** Snapshot after the change (null for deletions). */
  after?: object | null;
}

/**
 * Field names whose values never reach an audit row, at any depth, whatever a snapshot
 * contains: keys, key hashes, secret values, tokens, passwords, credentials.
 */
const SENSITIVE = /^(key|keys|hash|keyhash|secret|secrets|value|token|tokens|password|passwd|credential|credentials|authorization|apikey|api_key|plaintext|secretvalue)$/i;
export const REDACTED_VALUE = "[redacted]";

function redactDeep(v: unknown, depth: number): unknown {
  if (depth > 8 || v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map((x) => redactDeep(x, depth + 1));
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, SENSITIVE.test(k) ? (x === null || x === undefined ? x : REDACTED_VALUE) : redactDeep(x, depth + 1)]));
}

/**
 * A snapshot safe to store: every sensitive field (see SENSITIVE), at any depth, is replaced
 * by `[redacted]` — so the row still shows that a secret existed or changed, never its value.
 * Defence in depth: snapshots are built without secrets in the first place.
 *
 * @example redact({ name: "ci", secret: "s3cr3t" }) // { name: "ci", secret: "[redacted]" }
 */
export function redact(snapshot: object | null | undefined): Record<string, unknown> | null {
  if (!snapshot) return null;
  return redactDeep(snapshot, 0) as Record<string, unknown>;
}

/**
 * The insert for one admin audit row, to be put in the same `db.batch` as the mutation it
 * describes: D1 runs a batch as one transaction, so a change is never stored without its event.
 * The row's chain position (`seq`) is assigned inside that transaction; the admin API seals
 * the chain (hashes) before it answers (worker/audit/chain.ts).
 *
 * @example await db.batch([db.update(limits).set(next).where(...), adminAuditInsert(db, who, { action: "limit.set", targetType: "limit", targetId: id, before, after: next }, now)]);
 */
export function adminAuditInsert(db: Database, who: AdminActor, event: AdminEvent, now: Date) {
  return db.insert(adminAudit).values({
    id: newId("adminEvent", now.getTime()),
    createdAt: now,
    actor: who.actor,
    action: event.action,
    targetType: event.targetType,
    targetId: event.targetId,
    requestId: who.requestId,
    before: redact(event.before),
    after: redact(event.after),
    seq: sql`(SELECT COALESCE(MAX("seq"), 0) + 1 FROM "admin_audit")`,
  });
}
