import { createDb } from "../db";
import { validateEnv, type Env } from "../env";
import { dayChain, sealChain } from "./chain";
import { queryBudget, QueryBudgetSpent } from "../lib/query-budget";
import { revokeUnusedKeys, runRetention, type RetentionResult } from "./retention";
import type { RequestEvent } from "./event";
import { eventsOfMessage } from "./sink";
import { writeRequestEvents } from "./store";

/**
 * Queue consumer for AUDIT_QUEUE: writes the events of each delivered batch (each message a pack
 * of events as rows, an older `{ events }` pack, or one event: see EventRows) to D1 in one
 * idempotent write (keyed by request id), then acks. On a D1 failure the batch is retried by the queue; a redelivered event that was
 * already stored is skipped, so nothing is stored twice. Malformed messages, and malformed events
 * inside a pack, are dropped (acked) and logged so they cannot block the queue.
 */
export async function auditQueueConsumer(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  const valid: Message<unknown>[] = [];
  const events: RequestEvent[] = [];
  for (const m of batch.messages) {
    const carried = eventsOfMessage(m.body);
    if (carried && carried.dropped > 0) {
      console.error(JSON.stringify({ level: "error", msg: "malformed audit events dropped", queue: batch.queue, messageId: m.id, count: carried.dropped }));
    }
    if (!carried || carried.events.length === 0) {
      if (!carried) console.error(JSON.stringify({ level: "error", msg: "malformed audit message dropped", queue: batch.queue, messageId: m.id }));
      m.ack();
      continue;
    }
    valid.push(m);
    events.push(...carried.events);
  }
  if (valid.length === 0) return;
  try {
    await writeRequestEvents(env.DB, events);
    for (const m of valid) m.ack();
  } catch (err) {
    console.error(JSON.stringify({ level: "warn", msg: "audit batch write failed; retrying", count: events.length, error: String(err) }));
    for (const m of valid) m.retry({ delaySeconds: Math.min(60, 2 ** Math.min(m.attempts, 6)) });
  }
}

/** D1 queries one key revocation can take (its read and its batch of guard, update, audit row; one spare). */
const QUERIES_PER_REVOCATION = 5;

/**
 * Cron handler: seals any chain left unsealed (a write whose seal failed), revokes keys unused for
 * AUTO_REVOKE_UNUSED_KEYS_DAYS when set, and applies retention — in that order, the most
 * important first, within CRON_D1_QUERY_BUDGET queries (lib/query-budget.ts): revocation takes
 * at most half the budget, retention what is left. A run that spends the budget stops where it
 * is (every step leaves consistent state: each sealed page, revoked key and deleted chunk is its
 * own write) and says so in its log line; the next hour's run goes on from there.
 */
export async function auditScheduled(controller: Pick<ScheduledController, "scheduledTime">, env: Env): Promise<void> {
  const cfg = validateEnv(env);
  const now = controller.scheduledTime;
  const budget = queryBudget(env.DB, cfg.CRON_D1_QUERY_BUDGET);
  const d1 = budget.db;
  let revoked: string[] = [];
  let retention: RetentionResult = { deletedEvents: 0, retiredChains: [], deletedRollups: 0 };
  let budgetSpent = false;
  try {
    for (const chain of [dayChain(now - 86_400_000), dayChain(now)]) await sealChain(d1, "requests", chain);
    await sealChain(d1, "admin");
    if (cfg.AUTO_REVOKE_UNUSED_KEYS_DAYS) {
      const keys = Math.floor((cfg.CRON_D1_QUERY_BUDGET - budget.used()) / 2 / QUERIES_PER_REVOCATION);
      revoked = await revokeUnusedKeys(createDb(d1), cfg.AUTO_REVOKE_UNUSED_KEYS_DAYS, now, Math.min(200, keys), revoked);
      await sealChain(d1, "admin");
    }
    await runRetention(d1, { retentionDays: cfg.AUDIT_RETENTION_DAYS, minuteRollupDays: cfg.USAGE_MINUTE_RETENTION_DAYS, now }, retention);
  } catch (err) {
    if (!(err instanceof QueryBudgetSpent)) throw err;
    budgetSpent = true;
  }
  console.log(JSON.stringify({ level: "info", msg: "audit maintenance", ...retention, revokedKeys: revoked, queries: budget.used(), budgetSpent }));
}
