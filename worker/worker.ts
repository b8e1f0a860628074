import { auditQueueConsumer, auditScheduled } from "./audit/handlers";
import { createApp } from "./app";
import { dashboardScheduled } from "./dashboard";
import type { Env } from "./env";
import type { CompiledGateway } from "./gateway/types";

/**
 * The Worker's handlers for a gateway config: `fetch` (the app), `queue` (the AUDIT_QUEUE
 * consumer) and `scheduled` (audit retention, chain sealing, optional unused-key revocation; expired dashboard sessions and sign-in throttle rows).
 *
 * @example export default createWorker(defineGateway({ ... }));
 */
export function createWorker(config: CompiledGateway) {
  const app = createApp(config);
  return {
    fetch: app.fetch,
    queue: (batch: MessageBatch<unknown>, env: Env) => auditQueueConsumer(batch, env),
    scheduled: (controller: ScheduledController, env: Env, ctx: ExecutionContext) => {
      ctx.waitUntil(auditScheduled(controller, env));
      ctx.waitUntil(dashboardScheduled(controller, env));
    },
  } satisfies ExportedHandler<Env>;
}
