/**
 * Hash chains over the audit tables (tamper evidence).
 *
 * - `request_events`: one chain per UTC day of writing (`chain` = `YYYY-MM-DD`). Day chains keep
 *   appends independent of retention: retention removes whole old chains, never the middle of
 *   a live one, so what remains always verifies.
 * - `admin_audit`: one chain over the whole table (mutations are few). Rows written before
 *   migration 0002 have no `seq`: they stay outside the chain and `verifyChain` reports their
 *   count (`unchained`) instead of adopting them (see `unchainedAdminRows`).
 *
 * `seq` is dense within a chain and assigned inside the writing transaction (D1 serializes
 * writes, so `max(seq) + n` cannot race). Sealing — computing
 * `hash = sha256hex(prev_hash + "\n" + canonical(row))` in seq order — happens right after the
 * write, from the row as D1 stored it, so writers never contend on a chain head. A row is only
 * tamper-evident once sealed; `verify` reports unsealed rows separately and never seals them.
 */

import { AUDIT_LOG_NAMES } from "./chain-names";
import { hexDigest } from "../lib/digest";

export const GENESIS_HASH = "0".repeat(64);

export type AuditLog = (typeof AUDIT_LOG_NAMES)[number];

interface LogSpec {
  table: string;
  /** Columns whose stored values make up a row's content, in hashing order. */
  columns: readonly string[];
  /** Time column used for ranges. */
  timeColumn: string;
}

export const LOGS: Record<AuditLog, LogSpec> = {
  requests: {
    table: "request_events",
    columns: [
      "id",
      "chain",
      "seq",
      "ts",
      "user_id",
      "key_id",
      "group",
      "route",
      "method",
      "path",
      "client_ip",
      "country",
      "colo",
      "decision",
      "decided_by",
      "code",
      "reason",
      "status",
      "origin_status",
      "bytes_in",
      "bytes_out",
      "latency_ms",
      "origin_latency_ms",
      "limit_state",
    ],
    timeColumn: "ts",
  },
  admin: {
    table: "admin_audit",
    columns: ["id", "seq", "created_at", "actor", "action", "target_type", "target_id", "request_id", "before", "after"],
    timeColumn: "created_at",
  },
};

/** The checkpoint key of a chain (audit_checkpoints.chain). */
export const checkpointKey = (log: AuditLog, chain: string | null) => (log === "admin" ? "admin" : `requests:${chain}`);

/** The day chain a request event written at `now` belongs to. */
export const dayChain = (now: number) => new Date(now).toISOString().slice(0, 10);

const sha256hex = (text: string) => hexDigest("SHA-256", text);

type Row = Record<string, unknown>;

/** The canonical content of a stored row: its content columns, in order, as D1 returns them. */
export function canonicalRow(log: AuditLog, row: Row): string {
  return JSON.stringify(LOGS[log].columns.map((c) => row[c] ?? null));
}

export const rowHash = (log: AuditLog, prevHash: string, row: Row) => sha256hex(`${prevHash}\n${canonicalRow(log, row)}`);

const q = (name: string) => `"${name}"`;
const selectList = (log: AuditLog) => [...LOGS[log].columns, "prev_hash", "hash"].map(q).join(", ");
/** `chain = ?` for request day chains; the admin chain is every row with a seq. */
// Both forms bind ?1 (the admin chain binds null), so every query has the same parameters.
const chainWhere = (log: AuditLog) => (log === "requests" ? `"chain" = ?1` : `?1 IS NULL AND "seq" IS NOT NULL`);
const chainBinds = (log: AuditLog, chain: string | null) => [log === "requests" ? chain : null];

interface Anchor {
  seq: number;
  hash: string;
}

async function checkpointOf(d1: D1Database, log: AuditLog, chain: string | null): Promise<Anchor | null> {
  const cp = await d1
    .prepare(`SELECT through_seq AS seq, through_hash AS hash FROM audit_checkpoints WHERE chain = ?`)
    .bind(checkpointKey(log, chain))
    .first<Anchor>();
  return cp ?? null;
}

const SEAL_PAGE = 200;

/**
 * Computes hashes for the chain's unsealed rows, in seq order, from the last sealed row (or
 * checkpoint, or genesis). Idempotent and safe to run concurrently: every sealer computes the
 * same hashes and only writes rows still unsealed. Returns how many rows it sealed.
 */
export async function sealChain(d1: D1Database, log: AuditLog, chain: string | null = null): Promise<number> {
  const { table } = LOGS[log];
  let sealed = 0;
  for (let round = 0; round < 1000; round++) {
    const last = await d1
      .prepare(`SELECT "seq", "hash" FROM ${table} WHERE ${chainWhere(log)} AND "hash" IS NOT NULL ORDER BY "seq" DESC LIMIT 1`)
      .bind(...chainBinds(log, chain))
      .first<Anchor>();
    const anchor = last ?? (await checkpointOf(d1, log, chain)) ?? { seq: 0, hash: GENESIS_HASH };
    const { results } = await d1
      .prepare(`SELECT ${selectList(log)} FROM ${table} WHERE ${chainWhere(log)} AND "seq" > ?2 ORDER BY "seq" LIMIT ${SEAL_PAGE}`)
      .bind(...chainBinds(log, chain), anchor.seq)
      .all<Row>();
    const updates: Array<{ s: number; p: string; h: string }> = [];
    let prev = anchor;
    for (const row of results) {
      // Stop at a gap (rows deleted before sealing) or at a row sealed by someone else meanwhile.
      if (row.seq !== prev.seq + 1 || row.hash !== null) break;
      const h = await rowHash(log, prev.hash, row);
      updates.push({ s: row.seq as number, p: prev.hash, h });
      prev = { seq: row.seq as number, hash: h };
    }
    if (updates.length === 0) return sealed;
    const where = log === "requests" ? `${table}."chain" = ?2 AND` : "";
    await d1
      .prepare(
        `UPDATE ${table} SET "prev_hash" = j.value ->> 'p', "hash" = j.value ->> 'h' FROM json_each(?1) AS j ` +
          `WHERE ${where} ${table}."seq" = j.value ->> 's' AND ${table}."hash" IS NULL`,
      )
      .bind(JSON.stringify(updates), ...(log === "requests" ? [chain] : []))
      .run();
    sealed += updates.length;
    if (results.length < SEAL_PAGE) return sealed;
  }
  return sealed;
}

/** Why verification stopped at a row. */
export type BrokenReason = "content_hash_mismatch" | "prev_hash_mismatch" | "missing_rows" | "sealed_after_unsealed";

export interface ChainReport {
  chain: string | null;
  status: "ok" | "broken" | "retired" | "empty";
  rows: number;
  firstSeq: number | null;
  lastSeq: number | null;
  /** Hash of the last verified row: anchor it outside D1 (e.g. in a ticket) to detect truncation later. */
  headHash: string | null;
  /** Rows at the tail not sealed yet (written moments ago); not verified. */
  unsealed: number;
  /** Rows removed by retention before this chain's first remaining row (from the checkpoint). */
  retiredThroughSeq: number | null;
  /**
   * Admin chain only (0 for request chains): admin rows without a chain position — written before
   * migration 0002 added the chain. They are neither verified nor counted as broken; the count is
   * reported so they are never skipped silently (see `unchainedRows`).
   */
  unchained: number;
  /** Oldest and newest `created_at` of those rows (ISO), or null when there are none. */
  unchainedRange: { from: string; to: string } | null;
}

export interface BrokenLink {
  log: AuditLog;
  chain: string | null;
  seq: number;
  id: string;
  reason: BrokenReason;
  expected: string | null;
  stored: string | null;
}

const VERIFY_PAGE = 500;

/**
 * Admin rows outside the chain: `seq` is null only for rows written before migration 0002 (every
 * later insert takes a seq in its own transaction). They are reported, not adopted: giving a
 * position to any seq-less row found later would also seal a row slipped into D1 behind the
 * gateway's back. The count should never grow; anchor it with `headHash`.
 */
async function unchainedAdminRows(d1: D1Database): Promise<Pick<ChainReport, "unchained" | "unchainedRange">> {
  const row = await d1
    .prepare(`SELECT COUNT(*) AS n, MIN("created_at") AS first, MAX("created_at") AS last FROM ${LOGS.admin.table} WHERE "seq" IS NULL`)
    .first<{ n: number; first: number | null; last: number | null }>();
  if (!row || row.n === 0 || row.first === null || row.last === null) return { unchained: 0, unchainedRange: null };
  return { unchained: row.n, unchainedRange: { from: new Date(row.first).toISOString(), to: new Date(row.last).toISOString() } };
}

/**
 * Recomputes one chain from `fromSeq` (default: its start, or its checkpoint) and reports the
 * first broken link. A row whose content was edited fails `content_hash_mismatch` at that row;
 * a deleted row makes its successor fail `missing_rows`; a re-hashed edit fails
 * `prev_hash_mismatch` at the next row; a sealed row after an unsealed one (a removed hash), `sealed_after_unsealed`.
 */
export async function verifyChain(
  d1: D1Database,
  log: AuditLog,
  chain: string | null,
  opts: { fromSeq?: number; toSeq?: number; maxRows?: number } = {},
): Promise<{ report: ChainReport; broken: BrokenLink | null; truncated: boolean }> {
  const { table } = LOGS[log];
  const checkpoint = await checkpointOf(d1, log, chain);
  let anchor: Anchor = checkpoint ?? { seq: 0, hash: GENESIS_HASH };
  if (opts.fromSeq !== undefined && opts.fromSeq - 1 > anchor.seq) {
    // Verifying a range: the row just before it is the (trusted) anchor.
    const before = await d1
      .prepare(`SELECT "seq", "hash" FROM ${table} WHERE ${chainWhere(log)} AND "seq" = ?2`)
      .bind(...chainBinds(log, chain), opts.fromSeq - 1)
      .first<{ seq: number; hash: string | null }>();
    if (before?.hash) anchor = { seq: before.seq, hash: before.hash };
  }
  const report: ChainReport = {
    chain,
    status: "ok",
    rows: 0,
    firstSeq: null,
    lastSeq: null,
    headHash: null,
    unsealed: 0,
    retiredThroughSeq: checkpoint?.seq ?? null,
    unchained: 0,
    unchainedRange: null,
  };
  if (log === "admin") Object.assign(report, await unchainedAdminRows(d1));
  const toSeq = opts.toSeq ?? Number.MAX_SAFE_INTEGER;
  const maxRows = opts.maxRows ?? 200_000;
  let prev = anchor;
  let after = anchor.seq;
  let truncated = false;
  /** Seq of the first unsealed row seen (the unsealed tail starts there), or null. */
  let tail: number | null = null;
  pages: for (;;) {
    const tailSeenBefore = tail !== null;
    const { results } = await d1
      .prepare(`SELECT ${selectList(log)} FROM ${table} WHERE ${chainWhere(log)} AND "seq" > ?2 AND "seq" <= ?3 ORDER BY "seq" LIMIT ${VERIFY_PAGE}`)
      .bind(...chainBinds(log, chain), after, toSeq)
      .all<Row>();
    for (const row of results) {
      const seq = row.seq as number;
      const fail = (reason: BrokenReason, expected: string | null, stored: string | null) => {
        report.status = "broken";
        return { report, broken: { log, chain, seq, id: String(row.id), reason, expected, stored }, truncated };
      };
      if (report.firstSeq === null) report.firstSeq = seq;
      report.lastSeq = seq;
      if (row.hash === null) {
        tail ??= seq;
        report.unsealed++;
        after = seq;
        continue;
      }
      if (tail !== null) {
        // A sealed row after an unsealed one. Within one read that is a break. Across reads, a
        // sealer may have finished meanwhile (it seals in seq order, from the tail's first row):
        // if that row is sealed now, read again from it; if it is still unsealed, it already was
        // when this row was read sealed — a break too.
        if (tailSeenBefore) {
          const first = await d1.prepare(`SELECT "hash" FROM ${table} WHERE ${chainWhere(log)} AND "seq" = ?2`).bind(...chainBinds(log, chain), tail).first<{ hash: string | null }>();
          if (first?.hash) {
            tail = null;
            report.unsealed = 0;
            after = prev.seq;
            continue pages;
          }
        }
        return fail("sealed_after_unsealed", null, row.hash as string);
      }
      if (seq !== prev.seq + 1) return fail("missing_rows", `seq ${prev.seq + 1}`, `seq ${seq}`);
      if (row.prev_hash !== prev.hash) return fail("prev_hash_mismatch", prev.hash, (row.prev_hash as string | null) ?? null);
      const h = await rowHash(log, prev.hash, row);
      if (h !== row.hash) return fail("content_hash_mismatch", h, row.hash as string);
      report.rows++;
      report.headHash = h;
      prev = { seq, hash: h };
      after = seq;
    }
    if (results.length < VERIFY_PAGE) break;
    if (report.rows + report.unsealed >= maxRows) {
      truncated = true;
      break;
    }
  }
  if (report.firstSeq === null) report.status = checkpoint ? "retired" : "empty";
  return { report, broken: null, truncated };
}
