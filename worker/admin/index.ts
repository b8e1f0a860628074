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
  // The document describes the API; it holds no data, so it is served without the token.
  admin.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: { title: "Portcullis admin API", version: "1.0.0", description: "Manage proxy users, roles, keys and origin secrets. Errors are RFC 9457 problem+json with a stable `code`." },
    security: [{ adminToken: [] }],
  });
  admin.use("*", adminAuth(), purgeKeyCacheOnMutation(), sealAdminAuditOnMutation());
  admin.route("/", usersRouter());
  admin.route("/", keysRouter());
  admin.route("/", rolesRouter());
  admin.route("/", auditRouter());
  admin.route("/", secretsRouter());
  admin.route("/", limitsRouter());
  return admin;
}
