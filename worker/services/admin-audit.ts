import type { Database } from "../db";
import { adminAudit } from "../db/schema";
import { newId } from "../lib/ids";

/** Who did it and under which request; every admin mutation carries this into its audit row. */
export interface AdminActor {
  actor: string;
  requestId: string;
}

export interface AdminEvent {
  action: string;
  targetType: "user" | "role" | "key" | "secret";
  targetId: string;
  before?: object | null;
  after?: object | null;
}

// Field names that must never be written to an audit row, whatever a snapshot contains.
const REDACTED_FIELDS = new Set(["key", "hash", "secret", "value", "token", "password"]);

/** Drops secret-bearing fields from a snapshot (defence in depth: snapshots are built without them). */
export function redact(snapshot: object | null | undefined): Record<string, unknown> | null {
  if (!snapshot) return null;
  return Object.fromEntries(Object.entries(snapshot).filter(([k]) => !REDACTED_FIELDS.has(k)));
}

/**
 * The insert for one admin audit row, to be put in the same `db.batch` as the mutation it
 * describes: D1 runs a batch as one transaction, so a change is never stored without its event.
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
  });
}
