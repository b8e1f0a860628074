import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));

export default defineConfig({
  test: {
    projects: [
      {
        // Most tests: the gateway inside workerd (the Workers pool), against real local services.
        // The same zod as the deployed bundle (wrangler.toml [alias]: English locale only).
        resolve: { alias: [{ find: /^zod$/, replacement: path.join(import.meta.dirname, "worker/vendor/zod.js") }] },
        plugins: [
          cloudflareTest(({ inject }) => ({
            main: "./test/fixtures/worker.ts",
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                TEST_MIGRATIONS: migrations,
                ADMIN_TOKEN: "test-admin-token-0123456789abcdef",
                TEST_ORIGIN_URL: `http://127.0.0.1:${inject("originPort")}`,
                TEST_ORIGIN_PREFIXED_URL: `http://127.0.0.1:${inject("originPort")}/base/v1`,
                ECHO_ORIGIN_TOKEN: "origin-secret-value-7f3a9c",
                // HS256 key for jwt-auth tests (≥ 32 bytes) and the origin-secret store's AES key.
                JWT_HS_SECRET: "hs256-test-secret-0123456789abcdef0123",
                SECRETS_KEY: "dGVzdC1zZWNyZXRzLWtleS0zMi1ieXRlcy1sb25nISE=",
                // Short TTLs so tests can watch cached state expire without long sleeps.
                KEY_CACHE_TTL_SECONDS: "1",
                KEY_NEGATIVE_CACHE_TTL_SECONDS: "1",
                // The Upstash backend under test: the bridge over the local Redis (test/node/global-setup.ts).
                // Not the default UPSTASH_REDIS_REST_* names, so routes on `backend: "auto"` keep the Durable Object.
                UPSTASH_TEST_URL: `http://127.0.0.1:${inject("upstashPort")}`,
                UPSTASH_TEST_TOKEN: inject("upstashToken"),
                // Upstash "down": nothing listens on port 9 (refused) / the bridge never answers (stalled).
                UPSTASH_DOWN_URL: "http://127.0.0.1:9",
                UPSTASH_STALL_URL: `http://127.0.0.1:${inject("upstashPort")}/__stall`,
              },
              // Limiter Durable Objects that misbehave, for the fail-mode tests (test/fixtures/worker.ts).
              durableObjects: { LIMITER_STALLED: "StalledLimiter", LIMITER_BROKEN: "BrokenLimiter", LIMITER_SLOW: { className: "SlowLimiter", useSQLite: true } },
            },
          })),
        ],
        test: {
          name: "workers",
          globalSetup: ["./test/node/global-setup.ts", "./test/node/security-setup.ts"],
          setupFiles: ["./test/apply-migrations.ts"],
          include: ["test/**/*.test.ts", "plugins/**/*.test.ts", "worker/**/*.test.ts", "docs/examples/**/*.test.ts"],
          exclude: ["test/node/**", "test/e2e/**"],
          testTimeout: 20_000,
          // Before the processes project, not beside it: on a 2-core machine the two together
          // starve each other (and the real origin) of CPU.
          sequence: { groupOrder: 0 },
        },
      },
      {
        // Whole gateway processes started from Node (wrangler's unstable_startWorker): several
        // processes sharing one backend, and restarts.
        test: {
          name: "processes",
          environment: "node",
          include: ["test/node/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          sequence: { groupOrder: 1 },
        },
      },
      {
        // Outside-in tests in node: the CLI as a subprocess and a real browser (Debian's chromium),
        // against the fixture gateway in workerd on 127.0.0.1 (started once in the global setup).
        test: {
          name: "e2e",
          environment: "node",
          globalSetup: ["./test/e2e/global-setup.ts"],
          include: ["test/e2e/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // One gateway, one D1, one browser: files run one after another, after the other groups.
          fileParallelism: false,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
