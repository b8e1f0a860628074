import { createRoute } from "@hono/zod-openapi";
import * as roles from "../services/roles";
import { actorOf } from "./auth";
import { createAdminRouter, json, jsonBody, problems } from "./openapi";
import { adminSchemas, idParam, pageOf } from "./schemas";

export function rolesRouter() {
  const { listQuery, roleCreateSchema, rolePatchSchema, roleSchema } = adminSchemas();
  const tags = ["roles"];
  const params = idParam("rol", "role");

  return createAdminRouter()
    .openapi(
      createRoute({ method: "post", path: "/roles", tags, summary: "Create a role", request: { body: jsonBody(roleCreateSchema, "The role") }, responses: { 201: json(roleSchema, "Created"), ...problems(400, 409) } }),
      async (c) => c.json(await roles.createRole(c.var.services.db, actorOf(c), c.req.valid("json")), 201),
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/roles",
        tags,
        summary: "List roles",
        request: { query: listQuery.extend({ name: roleCreateSchema.shape.name.optional().describe("Only the role with this name") }) },
        responses: { 200: json(pageOf(roleSchema, "RolePage"), "A page of roles"), ...problems(400) },
      }),
      async (c) => c.json(await roles.listRoles(c.var.services.db, c.req.valid("query")), 200),
    )
    .openapi(
      createRoute({ method: "get", path: "/roles/{id}", tags, summary: "Get a role", request: { params }, responses: { 200: json(roleSchema, "The role"), ...problems(400, 404) } }),
      async (c) => c.json(await roles.getRole(c.var.services.db, c.req.valid("param").id), 200),
    )
    .openapi(
      createRoute({
        method: "patch",
        path: "/roles/{id}",
        tags,
        summary: "Update a role",
        description: "Permission changes apply to every holder's keys at once in this isolate, elsewhere within the key cache TTL.",
        request: { params, body: jsonBody(rolePatchSchema, "Fields to change") },
        responses: { 200: json(roleSchema, "The updated role"), ...problems(400, 404, 409) },
      }),
      async (c) => c.json(await roles.updateRole(c.var.services.db, actorOf(c), c.req.valid("param").id, c.req.valid("json")), 200),
    )
    .openapi(
      createRoute({
        method: "delete",
        path: "/roles/{id}",
        tags,
        summary: "Delete a role",
        description: "Removes the role from every user holding it.",
        request: { params },
        responses: { 204: { description: "Deleted" }, ...problems(400, 404) },
      }),
      async (c) => {
        await roles.deleteRole(c.var.services.db, actorOf(c), c.req.valid("param").id);
        return c.body(null, 204);
      },
    );
}
