import type { TestProject } from "vitest/node";
import { startTestGateway } from "../../scripts/test-gateway.mjs";
import { startRecordingOrigin } from "../node/origin";

declare module "vitest" {
  export interface ProvidedContext {
    gatewayUrl: string;
    adminToken: string;
    e2eOriginUrl: string;
    /** The gateway's local D1 directory, for `d1Execute` (scripts/test-gateway.mjs). */
    gatewayPersist: string;
  }
}

const ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef";

/** One recording origin and one gateway (workerd, fresh local D1) for every e2e file. */
export default async function setup(project: TestProject) {
  const origin = await startRecordingOrigin();
  const originUrl = `http://127.0.0.1:${origin.port}`;
  const gateway = await startTestGateway({ originUrl, adminToken: ADMIN_TOKEN });
  project.provide("gatewayUrl", gateway.url);
  project.provide("adminToken", ADMIN_TOKEN);
  project.provide("e2eOriginUrl", originUrl);
  project.provide("gatewayPersist", gateway.persist);
  return async () => {
    await gateway.stop();
    await new Promise<void>((resolve) => origin.server.close(() => resolve()));
  };
}
