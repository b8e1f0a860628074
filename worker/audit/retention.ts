import type { Database } from "../db";
import { apiKeys } from "../db/schema";
import { revokeKey, unusedKeysCondition } from "../services/keys";
import { checkpointKey, dayChain, sealChain } from "./chain";

const DAY = 86_400_000;
/** Rows deleted per statement: keeps each D1 statement short. */
const DELETE_CHUNK = 2_000;

export interface RetentionResult {
  deletedEvents: number;
  retiredChains: string[];
  deletedRollups: number;
}

/**
 * Deletes request events older than `retentionDays` without breaking verification of what
 * remains. Events live in day chains (the UTC day they were written); a chain is removed from
 * its start in chunks, and each chunk's DELETE runs in one batch with an upsert of the chain's
 * checkpoint (last deleted seq and that row's hash). Verification of a chain starts from its
 * checkpoint, so a chain is always verifiable, even half-deleted; a fully deleted chain reports
 * `retired`. Usage is unaffected (rollups were maintained as events arrived); minute rollups
 * older than `minuteRollupDays` are deleted, hour and day rollups are kept.
 */
export async function runRetention(
  d1: D1Database,
  opts: { retentionDays: number; minuteRollupDays: number; now?: number; maxChunks?: number; chunkSize?: number },
  /** Filled in as the run goes, so a caller whose run is cut short (a query budget) still knows what was done. */
  result: RetentionResult = { deletedEvents: 0, retiredChains: [], deletedRollups: 0 },
): Promise<RetentionResult> {
  const now = opts.now ?? Date.now();
  // Chains strictly before the cutoff day hold only events written more than retentionDays ago.
  const cutoff = dayChain(now - opts.retentionDays * DAY);
  let budget = opts.maxChunks ?? 500;
  const chunk = opts.chunkSize ?? DELETE_CHUNK;
  const { results: chains } = await d1.prepare(`SELECT DISTINCT "chain" FROM request_events WHERE "chain" < ?1 ORDER BY "chain"`).bind(cutoff).all<{ chain: string }>();
  for (const { chain } of chains) {
    // Seal first, so the checkpoint carries the real hash of the last deleted row.
    await sealChain(d1, "requests", chain);
    for (; budget > 0; budget--) {
      // The last row of the next chunk; none means the rest of the chain fits in one chunk.
      const last = await d1
        .prepare(`SELECT "seq", "hash" FROM request_events WHERE "chain" = ?1 ORDER BY "seq" LIMIT 1 OFFSET ?2`)
        .bind(chain, chunk - 1)
        .first<{ seq: number; hash: string | null }>();
      const tail = last ?? (await d1.prepare(`SELECT "seq", "hash" FROM request_events WHERE "chain" = ?1 ORDER BY "seq" DESC LIMIT 1`).bind(chain).first<{ seq: number; hash: string | null }>());
      if (!tail) break;
      const [, del] = await d1.batch([
        d1
          .prepare(
            `INSERT INTO audit_checkpoints ("chain", "through_seq", "through_hash", "deleted_rows", "created_at") ` +
              `VALUES (?1, ?2, ?3, (SELECT COUNT(*) FROM request_events WHERE "chain" = ?4 AND "seq" <= ?2), ?5) ` +
              `ON CONFLICT ("chain") DO UPDATE SET "through_seq" = excluded."through_seq", "through_hash" = excluded."through_hash", ` +
              `"deleted_rows" = audit_checkpoints."deleted_rows" + excluded."deleted_rows", "created_at" = excluded."created_at"`,
          )
          .bind(checkpointKey("requests", chain), tail.seq, tail.hash ?? "unsealed", chain, now),
        d1.prepare(`DELETE FROM request_events WHERE "chain" = ?1 AND "seq" <= ?2`).bind(chain, tail.seq),
      ]);
      result.deletedEvents += del?.meta.changes ?? 0;
      if (!last) {
        result.retiredChains.push(chain);
        break;
      }
    }
  }
  const rollupCutoff = now - opts.minuteRollupDays * DAY;
  for (; budget > 0; budget--) {
    const r = await d1
      .prepare(
        `DELETE FROM usage_rollups WHERE rowid IN (SELECT rowid FROM usage_rollups WHERE "granularity" = 'minute' AND "bucket" < ?1 LIMIT ${DELETE_CHUNK})`,
      )
      .bind(rollupCutoff)
      .run();
    result.deletedRollups += r.meta.changes ?? 0;
    if ((r.meta.changes ?? 0) < DELETE_CHUNK) break;
  }
  return result;
}

/**
 * Revokes keys unused for `days` days (optional: AUTO_REVOKE_UNUSED_KEYS_DAYS). Each revocation
 * goes through the keys service, so it gets its admin audit row (actor `system:auto-revoke`).
 * The ids go into `revoked` as each is done (so a run cut short still reports them).
 */
export async function revokeUnusedKeys(db: Database, days: number, now = Date.now(), max = 200, revoked: string[] = []): Promise<string[]> {
  if (max <= 0) return revoked;
  const rows = await db.select({ id: apiKeys.id }).from(apiKeys).where(unusedKeysCondition(days, now)).orderBy(apiKeys.id).limit(max);
  const who = { actor: "system:auto-revoke", requestId: `cron_${now.toString(36)}` };
  for (const { id } of rows) {
    await revokeKey(db, who, id);
    revoked.push(id);
  }
  return revoked;
}
