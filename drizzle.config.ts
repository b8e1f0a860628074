import { defineConfig } from "drizzle-kit";

// Only `generate` is used: migrations are applied by `wrangler d1 migrations apply`.
export default defineConfig({
  dialect: "sqlite",
  schema: "./worker/db/schema/index.ts",
  out: process.env.DRIZZLE_OUT ?? "./migrations",
  casing: "snake_case",
});
