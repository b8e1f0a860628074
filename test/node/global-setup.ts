import type { TestProject } from "vitest/node";
import { startUpstashBridge as startBridge } from "../../scripts/upstash-bridge.mjs";
import { startRecordingOrigin } from "./origin";

const startUpstashBridge = startBridge as (o: { port?: number; redisUrl?: string; token: string }) => Promise<{ port: number; url: string; close(): Promise<void> }>;

declare module "vitest" {
  export interface ProvidedContext {
    originPort: number;
    upstashPort: number;
    upstashToken: string;
  }
}

export const UPSTASH_TEST_TOKEN = "test-upstash-token-5d1c";

/** Starts the real recording origin and the Upstash bridge over the local Redis for the whole run. */
export default async function setup(project: TestProject) {
  const { server, port } = await startRecordingOrigin();
  const bridge = await startUpstashBridge({ token: UPSTASH_TEST_TOKEN, redisUrl: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" });
  project.provide("originPort", port);
  project.provide("upstashPort", bridge.port);
  project.provide("upstashToken", UPSTASH_TEST_TOKEN);
  return async () => {
    await bridge.close();
    // Idle keep-alive connections would otherwise hold close() open until they time out.
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
}
