import gateway from "../gateway.config";
import { createWorker } from "./worker";

// The config is compiled at module load: a bad gateway.config.ts fails the deploy's dry-run
// bundle check and the test suite, never a live request.
export default createWorker(gateway);

export { createApp } from "./app";
export { createWorker } from "./worker";
export { defineGateway } from "./gateway/config";
// The public plugin API (definePlugin, GatewayError, defineErrorCodes, bagSlot, waitUntil, types…).
export * from "./plugin-api";
