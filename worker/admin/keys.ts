import { createRoute } from "@hono/zod-openapi";
import * as keys from "../services/keys";
import { actorOf } from "./auth";
import { createAdminRouter, json, jsonBody, problems } from "./openapi";
import { z } from "@hono/zod-openapi";
import { adminSchemas, idParam, pageOf } from "./schemas";

export function keysRouter() {
  const { issuedKeySchema, keyCreateSchema, keyRotateSchema, keySchema, listQuery, rotatedKeySchema } = adminSchemas();
  const tags = ["keys"];
  const userParams = idParam("usr", "proxy user");
  const keyParams = idParam("key", "key");

  return createAdminRouter()
    .openapi(
      createRoute({
        method: "post",
        path: "/users/{id}/keys",
        tags,
        summary: "Issue a key to a proxy user",
        description: "The response is the only place the plaintext `key` ever appears.",
        request: { params: userParams, body: jsonBody(keyCreateSchema, "Key options (all optional: send `{}`)") },
        responses: { 201: json(issuedKeySchema, "Issued"), ...problems(400, 404) },
      }),
      async (c) => c.json(await keys.issueKey(c.var.services.db, actorOf(c), c.req.valid("param").id, c.req.valid("json")), 201),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/users/{id}/keys",
        tags,
        summary: "List a proxy user's keys",
        request: { params: userParams, query: listQuery },
        responses: { 200: json(pageOf(keySchema, "ApiKeyPage"), "A page of keys (no secrets)"), ...problems(400, 404) },
      }),
      async (c) => c.json(await keys.listKeys(c.var.services.db, c.req.valid("param").id, c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/keys",
        tags,
        summary: "List keys across proxy users",
        description: "Oldest first. `unusedForDays=N`: only active keys with no authenticated use in N days (last use comes from the audit trail).",
        request: {
          query: listQuery.extend({
            userId: z.string().max(100).optional().describe("Only this proxy user's keys"),
            unusedForDays: z.coerce.number().int().min(0).max(3650).optional().describe("Only active keys unused for at least this many days"),
          }),
        },
        responses: { 200: json(pageOf(keySchema, "ApiKeyPage"), "A page of keys (no secrets)"), ...problems(400) },
      }),
      async (c) => c.json(await keys.listAllKeys(c.var.services.db, c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({ method: "get", path: "/keys/{id}", tags, summary: "Get a key", request: { params: keyParams }, responses: { 200: json(keySchema, "The key (no secret)"), ...problems(400, 404) } }),
      async (c) => c.json(await keys.getKey(c.var.services.db, c.req.valid("param").id), 200),
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/keys/{id}/rotate",
        tags,
        summary: "Rotate a key",
        description:
          "Issues a successor that works at once; the old key works for `gracePeriodSeconds`, then gets 401. A key rotates once: 409 `KEY_ALREADY_ROTATED` if it has a successor, `CONFLICT` if revoked, expired or changed concurrently.",
        request: { params: keyParams, body: { ...jsonBody(keyRotateSchema, "Rotation options (send `{}` for none)"), required: false } },
        responses: { 201: json(rotatedKeySchema, "The new key, and the old one's new state"), ...problems(400, 404, 409) },
      }),
      async (c) => c.json(await keys.rotateKey(c.var.services.db, actorOf(c), c.req.valid("param").id, c.req.valid("json")?.gracePeriodSeconds ?? 0), 201),
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/keys/{id}/revoke",
        tags,
        summary: "Revoke a key",
        description: "Refused at once in the isolate that served this call; everywhere within the key cache TTL.",
        request: { params: keyParams },
        responses: { 200: json(keySchema, "The revoked key"), ...problems(400, 404) },
      }),
      async (c) => c.json(await keys.revokeKey(c.var.services.db, actorOf(c), c.req.valid("param").id), 200),
    );
}
