/// <reference types="vite/client" />
import type { D1Migration } from "cloudflare:test";

declare global {
  namespace Cloudflare {
    interface Env {
      DB: D1Database;
      ADMIN_TOKEN: string;
      TEST_MIGRATIONS: D1Migration[];
      TEST_ORIGIN_URL: string;
      TEST_ORIGIN_PREFIXED_URL: string;
      ECHO_ORIGIN_TOKEN: string;
      AUDIT_QUEUE: Queue;
      JWT_HS_SECRET: string;
      SECRETS_KEY: string;
    }
  }
}
export {};
