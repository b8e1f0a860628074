import type { TestProject } from "vitest/node";
import { startRecordingOrigin } from "./origin";

declare module "vitest" {
  export interface ProvidedContext {
    originPort: number;
  }
}

/** Starts the real recording origin on 127.0.0.1 for the whole run. */
export default async function setup(project: TestProject) {
  const { server, port } = await startRecordingOrigin();
  project.provide("originPort", port);
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}
