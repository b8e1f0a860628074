import { createRoute } from "@hono/zod-openapi";
import * as users from "../services/users";
import { actorOf } from "./auth";
import { createAdminRouter, json, jsonBody, problems } from "./openapi";
import { adminSchemas, idParam, pageOf } from "./schemas";

export function usersRouter() {
  const { userCreateSchema, userDeletedSchema, userListQuery, userPatchSchema, userSchema } = adminSchemas();
  const tags = ["proxy users"];
  const params = idParam("usr", "proxy user");

  return createAdminRouter()
    .openapi(
      createRoute({
        method: "post",
        path: "/users",
        tags,
        summary: "Create a proxy user",
        request: { body: jsonBody(userCreateSchema, "The proxy user") },
        responses: { 201: json(userSchema, "Created"), ...problems(400, 409) },
      }),
      async (c) => c.json(await users.createUser(c.var.services.db, actorOf(c), c.req.valid("json")), 201),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/users",
        tags,
        summary: "List proxy users",
        description: "Oldest first; filter by group, status or role.",
        request: { query: userListQuery },
        responses: { 200: json(pageOf(userSchema, "ProxyUserPage"), "A page of proxy users"), ...problems(400) },
      }),
      async (c) => c.json(await users.listUsers(c.var.services.db, c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({ method: "get", path: "/users/{id}", tags, summary: "Get a proxy user", request: { params }, responses: { 200: json(userSchema, "The proxy user"), ...problems(400, 404) } }),
      async (c) => c.json(await users.getUser(c.var.services.db, c.req.valid("param").id), 200),
    )
    .openapi(
      createRoute({
        method: "patch",
        path: "/users/{id}",
        tags,
        summary: "Update a proxy user",
        description: "`roles` replaces the whole set. Set `status: disabled` to refuse every key of the user.",
        request: { params, body: jsonBody(userPatchSchema, "Fields to change") },
        responses: { 200: json(userSchema, "The updated proxy user"), ...problems(400, 404, 409) },
      }),
      async (c) => c.json(await users.updateUser(c.var.services.db, actorOf(c), c.req.valid("param").id, c.req.valid("json")), 200),
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/users/{id}",
        tags,
        summary: "Delete a proxy user",
        description: "Revokes every key of the user, deletes the origin secrets bound to it (named in the `user.delete` audit row), then deletes the user.",
        request: { params },
        responses: { 200: json(userDeletedSchema, "Deleted, with the keys that were revoked"), ...problems(400, 404) },
      }),
      async (c) => c.json({ ...(await users.deleteUser(c.var.services.db, actorOf(c), c.req.valid("param").id)), deleted: true as const }, 200),
    );
}
