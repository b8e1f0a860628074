import { createDb } from "../db";
import { validateEnv, type Env } from "../env";
import { dayChain, sealChain } from "./chain";
import { revokeUnusedKeys, runRetention } from "./retention";
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

/**
 * Cron handler: seals any chain left unsealed (a write whose seal failed), applies retention,
 * and — when AUTO_REVOKE_UNUSED_KEYS_DAYS is set — revokes keys unused for that long.
 */
export async function auditScheduled(controller: Pick<ScheduledController, "scheduledTime">, env: Env): Promise<void> {
  const cfg = validateEnv(env);
  const now = controller.scheduledTime;
  for (const chain of [dayChain(now - 86_400_000), dayChain(now)]) await sealChain(env.DB, "requests", chain);
  await sealChain(env.DB, "admin");
  const retention = await runRetention(env.DB, { retentionDays: cfg.AUDIT_RETENTION_DAYS, minuteRollupDays: cfg.USAGE_MINUTE_RETENTION_DAYS, now });
  let revoked: string[] = [];
  if (cfg.AUTO_REVOKE_UNUSED_KEYS_DAYS) {
    revoked = await revokeUnusedKeys(createDb(env.DB), cfg.AUTO_REVOKE_UNUSED_KEYS_DAYS, now);
    await sealChain(env.DB, "admin");
  }
  console.log(JSON.stringify({ level: "info", msg: "audit maintenance", ...retention, revokedKeys: revoked }));
}
