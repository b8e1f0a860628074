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
// The public plugin API (definePlugin, GatewayError, defineErrorCodes, bagSlot, waitUntil, types…).
export * from "./plugin-api";
