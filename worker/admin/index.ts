import { auditRouter } from "./audit";
import { adminAuth, purgeKeyCacheOnMutation, sealAdminAuditOnMutation } from "./auth";
import { keysRouter } from "./keys";
import { limitsRouter } from "./limits";
import { createAdminRouter } from "./openapi";
import { rolesRouter } from "./roles";
import { secretsRouter } from "./secrets";
import { usersRouter } from "./users";

/**
 * The admin API, mounted at /admin/v1. Routes are thin: validate (zod, from the same schemas
 * the OpenAPI document is generated from) → call a service → respond. Services write the
 * admin audit row in the same D1 transaction as the change.
 *
 * Called on the first admin request of an isolate (`subApp` in worker/app.ts), not at start-up.
 * Each router is a function and every schema is built on first use (`adminSchemas()`), so
 * nothing of the admin API is built while an isolate only proxies.
 */
export function createAdminApp() {
  const admin = createAdminRouter();
  admin.openAPIRegistry.registerComponent("securitySchemes", "adminToken", { type: "http", scheme: "bearer", description: "The ADMIN_TOKEN secret" });
  // The OpenAPI document of these routes is built at build time (./openapi-document.ts) and served
  // as a static file at /admin/v1/openapi.json, without the token: it describes the API, no data.
  admin.use("*", adminAuth(), purgeKeyCacheOnMutation(), sealAdminAuditOnMutation());
  admin.route("/", usersRouter());
  admin.route("/", keysRouter());
  admin.route("/", rolesRouter());
  admin.route("/", auditRouter());
  admin.route("/", secretsRouter());
  admin.route("/", limitsRouter());
  return admin;
}
