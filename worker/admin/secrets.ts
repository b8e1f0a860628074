import { createRoute } from "@hono/zod-openapi";
import * as secrets from "../services/secrets";
import { actorOf } from "./auth";
import { createAdminRouter, json, jsonBody, problems } from "./openapi";
import { adminSchemas, pageOf } from "./schemas";

/** Write-only origin credentials: values go in, only names, bindings, versions and timestamps come out. */
export function secretsRouter() {
  const { secretBindingQuery, secretListQuery, secretNameParam, secretPutSchema, secretRekeyQuery, secretRekeySchema, secretSchema } = adminSchemas();
  const tags = ["origin secrets"];

  return createAdminRouter()
    .openapi(
      createRoute({
        method: "put",
        path: "/secrets/{name}",
        tags,
        summary: "Create or rotate an origin secret",
        description:
          "Stores the value encrypted; a later PUT to the same name and binding rotates it (version + 1). Gateways pick up the new value within SECRET_CACHE_TTL_SECONDS, at once in the isolate that served the call. Use it in a `headers` plugin template as `{secret:NAME}`.",
        request: { params: secretNameParam, body: jsonBody(secretPutSchema, "The value and optional binding") },
        responses: { 200: json(secretSchema, "Stored (the value is not echoed)"), ...problems(400, 404) },
      }),
      async (c) => c.json(await secrets.putSecret(c.var.services.db, c.var.services.env, actorOf(c), c.req.valid("param").name, c.req.valid("json")), 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/secrets",
        tags,
        summary: "List origin secrets (metadata only)",
        request: { query: secretListQuery },
        responses: { 200: json(pageOf(secretSchema, "OriginSecretPage"), "A page of secrets: names, bindings, versions, timestamps — never values"), ...problems(400) },
      }),
      async (c) => c.json(await secrets.listSecrets(c.var.services.db, c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/secrets/rekey",
        tags,
        summary: "Re-encrypt the store under a new SECRETS_KEY, a page at a time",
        description: "Re-encrypts the page's secrets still sealed with SECRETS_KEY_PREVIOUS; follow `nextCursor` until it is null. Paged so that each call stays within D1's queries per Worker invocation.",
        request: { query: secretRekeyQuery },
        responses: { 200: json(secretRekeySchema, "What was re-encrypted (no values)"), ...problems(400) },
      }),
      async (c) => c.json(await secrets.rekeySecrets(c.var.services.db, c.var.services.env, actorOf(c), c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/secrets/{name}",
        tags,
        summary: "Delete an origin secret",
        description: "Deletes the global secret, or the one bound to `userId` / `group`. Requests that need it then fail with 500 GATEWAY_MISCONFIGURED.",
        request: { params: secretNameParam, query: secretBindingQuery },
        responses: { 204: { description: "Deleted" }, ...problems(400, 404) },
      }),
      async (c) => {
        await secrets.deleteSecret(c.var.services.db, actorOf(c), c.req.valid("param").name, c.req.valid("query"));
        return c.body(null, 204);
      },
    );
}
