import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { configDefaults, defineConfig } from "vitest/config";

const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));

export default defineConfig({
  test: {
    projects: [
      {
        // The gateway's own tests, inside workerd.
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
              },
            },
          })),
        ],
        test: {
          name: "workers",
          globalSetup: ["./test/node/global-setup.ts"],
          setupFiles: ["./test/apply-migrations.ts"],
          include: ["test/**/*.test.ts", "plugins/**/*.test.ts", "worker/**/*.test.ts", "docs/examples/**/*.test.ts"],
          exclude: [...configDefaults.exclude, "test/e2e/**"],
          testTimeout: 20_000,
        },
      },
      {
        // Outside-in tests in node: the CLI as a subprocess and a real browser, against the
        // gateway running in workerd on 127.0.0.1 (started once in the global setup).
        test: {
          name: "e2e",
          environment: "node",
          globalSetup: ["./test/e2e/global-setup.ts"],
          include: ["test/e2e/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          // One gateway, one D1, one browser: files run one after another.
          fileParallelism: false,
        },
      },
    ],
  },
});
