import { dayChain, verifyChain, type AuditLog, type BrokenLink, type ChainReport } from "./chain";

export interface VerifyResult {
  ok: boolean;
  log: AuditLog;
  checkedRows: number;
  unsealedRows: number;
  /**
   * Admin rows outside the chain (written before migration 0002): not verified, not broken —
   * reported so they are never skipped silently. Always 0 for the request log.
   */
  unchainedRows: number;
  /** True when the row budget ran out: continue with `chain` + `fromSeq` from the last report. */
  truncated: boolean;
  chains: ChainReport[];
  firstBroken: BrokenLink | null;
}

/**
 * Verifies the request log's day chains between `from` and `to` (inclusive days), or one chain
 * (`chain`, optionally from `fromSeq`), or the admin chain (optionally `fromSeq`..`toSeq`).
 * Stops at the first broken link.
 */
export async function verifyAudit(
  d1: D1Database,
  q: { log: AuditLog; from?: Date | undefined; to?: Date | undefined; chain?: string | undefined; fromSeq?: number | undefined; toSeq?: number | undefined; maxRows: number },
): Promise<VerifyResult> {
  const result: VerifyResult = { ok: true, log: q.log, checkedRows: 0, unsealedRows: 0, unchainedRows: 0, truncated: false, chains: [], firstBroken: null };
  let chains: (string | null)[];
  if (q.log === "admin") chains = [null];
  else if (q.chain) chains = [q.chain];
  else {
    const to = dayChain((q.to ?? new Date()).getTime());
    const from = dayChain((q.from ?? new Date(Date.now() - 7 * 86_400_000)).getTime());
    const { results } = await d1
      .prepare(
        `SELECT DISTINCT "chain" AS c FROM request_events WHERE "chain" BETWEEN ?1 AND ?2 ` +
          `UNION SELECT substr("chain", 10) AS c FROM audit_checkpoints WHERE "chain" BETWEEN 'requests:' || ?1 AND 'requests:' || ?2 ORDER BY c`,
      )
      .bind(from, to)
      .all<{ c: string }>();
    chains = results.map((r) => r.c);
  }
  let budget = q.maxRows;
  for (const chain of chains) {
    const single = q.log === "admin" || q.chain !== undefined;
    const { report, broken, truncated } = await verifyChain(d1, q.log, chain, {
      ...(single && q.fromSeq !== undefined ? { fromSeq: q.fromSeq } : {}),
      ...(single && q.toSeq !== undefined ? { toSeq: q.toSeq } : {}),
      maxRows: budget,
    });
    result.chains.push(report);
    result.checkedRows += report.rows;
    result.unsealedRows += report.unsealed;
    result.unchainedRows += report.unchained;
    budget -= report.rows + report.unsealed;
    if (broken) {
      result.ok = false;
      result.firstBroken = broken;
      break;
    }
    if (truncated || budget <= 0) {
      result.truncated = true;
      break;
    }
  }
  return result;
}
