import { createAdminApp } from ".";

/** What the admin API's OpenAPI document says of itself, beside the routes' own schemas. */
export const ADMIN_OPENAPI_INFO: Parameters<ReturnType<typeof createAdminApp>["getOpenAPI31Document"]>[0] = {
  openapi: "3.1.0",
  info: { title: "Portcullis admin API", version: "1.0.0", description: "Manage proxy users, roles, keys and origin secrets. Errors are RFC 9457 problem+json with a stable `code`." },
  security: [{ adminToken: [] }],
};

/**
 * The admin API's OpenAPI 3.1 document, generated from the same route schemas that validate its
 * requests. Not part of the Worker: `npm run openapi` (scripts/openapi.mjs) writes it to
 * public/admin/v1/openapi.json, which the asset layer serves at /admin/v1/openapi.json, and a
 * test fails when the committed file no longer matches this (worker/vendor/zod-to-openapi.js
 * says why the Worker does not generate it itself).
 */
export function adminOpenApiDocument() {
  return createAdminApp().getOpenAPI31Document(ADMIN_OPENAPI_INFO);
}
