import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));

export default defineConfig({
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
    globalSetup: ["./test/node/global-setup.ts"],
    setupFiles: ["./test/apply-migrations.ts"],
    include: ["test/**/*.test.ts", "plugins/**/*.test.ts", "worker/**/*.test.ts", "docs/examples/**/*.test.ts"],
    testTimeout: 20_000,
  },
});
