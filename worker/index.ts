import gateway from "../gateway.config";
import { createApp } from "./app";
import type { Env } from "./env";

// The config is compiled at module load: a bad gateway.config.ts fails the deploy's dry-run
// bundle check and the test suite, never a live request.
const app = createApp(gateway);

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;

export { createApp } from "./app";
export { defineGateway } from "./gateway/config";
export { definePlugin } from "./gateway/plugin";
export { GatewayError } from "./errors";
// The rate-limit / quota Durable Object must be exported by the entry module for its binding.
export { LimiterDurableObject } from "./limits/durable-object";
