import type { TestProject } from "vitest/node";
import { startFaultOrigin } from "./fault-origin";
import { startRecordingOrigin } from "./origin";
import { startRawDriver, startRawGateway } from "./raw-gateway";

declare module "vitest" {
  export interface ProvidedContext {
    /** The misbehaving origin (test/node/fault-origin.ts) and its control port. */
    faultPort: number;
    faultControlPort: number;
    /** The raw-socket gateway: workerd's own socket, Miniflare's entry, the driver, its own recording origin. */
    rawDirectPort: number;
    rawEntryPort: number;
    rawDriverPort: number;
    rawOriginPort: number;
  }
}

/** Starts what test/security and test/faults need beyond the shared recording origin. */
export default async function setup(project: TestProject) {
  const fault = await startFaultOrigin();
  const origin = await startRecordingOrigin();
  const gateway = await startRawGateway(`http://127.0.0.1:${origin.port}`);
  const driver = await startRawDriver([gateway.directPort, gateway.entryPort]);
  project.provide("faultPort", fault.port);
  project.provide("faultControlPort", fault.controlPort);
  project.provide("rawDirectPort", gateway.directPort);
  project.provide("rawEntryPort", gateway.entryPort);
  project.provide("rawDriverPort", driver.port);
  project.provide("rawOriginPort", origin.port);
  return async () => {
    await new Promise((r) => driver.server.close(r));
    await gateway.mf.dispose();
    await new Promise((r) => origin.server.close(r));
    await fault.close();
  };
}
