import { createRoute, z } from "@hono/zod-openapi";
import { problemSchema } from "../errors";
import { once } from "../lib/once";
import * as limits from "../services/limits";
import { actorOf } from "./auth";
import { createAdminRouter, json, jsonBody, problems } from "./openapi";
import { idParam } from "./schemas";

const LIMIT_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** The body of `PUT …/limits`; the dashboard's override form is checked with it too (built on first use). */
export const overridesInput = once(() =>
  z
    .strictObject({
      limits: z
        .record(
          z.string().regex(LIMIT_NAME, "a limit name as in gateway.config.ts"),
          z.strictObject({ limit: z.number().int().min(0).max(1_000_000_000).describe("Requests per window (rate limit) or per period (quota)") }),
        )
        .refine((r) => Object.keys(r).length <= 100, "at most 100 limits")
        .describe("Limit name (the `name` of a rate-limit or quota plugin) → override. Replaces the whole set."),
    })
    .openapi("LimitOverridesInput"),
);

export function limitsRouter() {
  const tags = ["limits"];
  const userParams = idParam("usr", "proxy user");
  const roleParams = idParam("rol", "role");

  const overridesView = z
    .object({
      limits: z.record(z.string(), z.object({ limit: z.number().int(), updatedAt: z.string() })).describe("Limit name → override"),
    })
    .openapi("LimitOverrides");

  const statusFields = {
    userId: z.string(),
    limits: z.array(
      z.object({
        name: z.string(),
        kind: z.enum(["rate", "quota"]),
        algorithm: z.string(),
        by: z.array(z.string()),
        route: z.string().nullable().describe("Set when the limit counts per route"),
        window: z.string().nullable(),
        period: z.string().nullable(),
        limit: z.number().int().describe("Effective limit for this user"),
        source: z.string().describe("`config`, `role:<name>` or `user`"),
        backend: z.enum(["durable-object", "upstash"]),
        dryRun: z.boolean(),
        failMode: z.enum(["open", "closed"]),
        used: z.number().int().nullable().describe("Counted by the backend, less tokens the answering isolate holds unspent (other isolates' are included)"),
        remaining: z.number().int().nullable(),
        resetAt: z.string().nullable(),
        error: z.enum(["LIMITER_UNAVAILABLE"]).nullable().describe("Set when this limit's backend could not be read (figures are then null)"),
        shared: z.boolean().describe("The group's or the route's counter; a user's reset leaves it alone"),
      }),
    ),
  };
  const statusView = z.object(statusFields).openapi("UserLimitStatus");

  const resetResults = z
        .array(
          z.object({
            name: z.string(),
            route: z.string().nullable().describe("Set when the limit counts per route"),
            backend: z.enum(["durable-object", "upstash"]),
            outcome: z
              .enum(["reset", "unavailable"])
              .describe("`reset`: the backend confirmed zero. `unavailable`: the backend failed or timed out; not confirmed (safe to repeat)"),
            error: z.enum(["LIMITER_UNAVAILABLE"]).nullable(),
          }),
        )
        .describe("One entry per counter the reset chose (a limit counted per route has one per route)");
  const resetView = z
    .object({ ...statusFields, results: resetResults })
    .openapi("UserLimitReset", { description: "What the reset did to each chosen counter (`results`), and the user's usage afterwards (`limits`, as `…/limits/status`)" });

  const definitionsView = z
    .object({
      data: z.array(
        z.object({
          name: z.string().describe("The `name` of a rate-limit or quota plugin: what overrides name"),
          kind: z.enum(["rate", "quota"]),
          algorithm: z.string(),
          limit: z.number().int().describe("The default from gateway.config.ts, before role and user overrides"),
          window: z.string().nullable().describe("Rate limits: the window, e.g. `60s`"),
          period: z.string().nullable().describe("Quotas: `day`, `week` or `month` (UTC)"),
          by: z.array(z.string()).describe("What one counter is shared by"),
          routes: z.array(z.string()).describe("Routes whose chain runs this limit"),
          perUser: z.boolean().describe("Each user has a counter of their own"),
          dryRun: z.boolean(),
          failMode: z.enum(["open", "closed"]),
        }),
      ),
    })
    .openapi("LimitDefinitions");

  // A shared limit (counted by group and/or route only): its counters have no user.
  const sharedParams = z.object({ name: z.string().regex(LIMIT_NAME).openapi({ param: { name: "name", in: "path" }, example: "partner-monthly" }) });
  const sharedQuery = z.object({ group: z.string().min(1).max(100).optional().describe("The group, for a limit counted per group") });
  const sharedFields = { name: z.string(), group: z.string().nullable(), limits: statusFields.limits.describe("One counter, or one per route (usage under the configured limit)") };
  const sharedStatusView = z.object(sharedFields).openapi("SharedLimitStatus");
  const sharedResetView = z.object({ ...sharedFields, results: resetResults }).openapi("SharedLimitReset");
  const resetAnswers = (what: typeof resetView | typeof sharedResetView) => ({
    200: json(what, "Every chosen counter was reset; usage after the reset"),
    207: json(what, "Some counters were reset and some were not (`results[].outcome`); usage after the reset"),
    ...problems(400, 404),
    503: { description: "No chosen counter could be reset: their limiter backends did not answer (`LIMITER_UNAVAILABLE`, `Retry-After`)", content: { "application/problem+json": { schema: problemSchema() } } },
  });

  const resetInput = z
    .strictObject({
      names: z.array(z.string().regex(LIMIT_NAME)).min(1).max(100).optional().describe("Limits to reset (rate or quota); default: all of the user's quotas"),
    })
    .openapi("LimitReset");

  return createAdminRouter()
    .openapi(
      createRoute({
        method: "get",
        path: "/limits",
        tags,
        summary: "List the limits the gateway config declares",
        description: "One entry per limit name, with its configured default. Role and user overrides can name only these.",
        responses: { 200: json(definitionsView, "Limit definitions"), ...problems() },
      }),
      async (c) => c.json({ data: limits.listLimitDefinitions(c.var.gateway) }, 200),
    )
    .openapi(
      createRoute({ method: "get", path: "/users/{id}/limits", tags, summary: "Get a proxy user's limit overrides", request: { params: userParams }, responses: { 200: json(overridesView, "Overrides"), ...problems(400, 404) } }),
      async (c) => c.json({ limits: await limits.getUserOverrides(c.var.services.db, c.req.valid("param").id) }, 200),
    )
    .openapi(
      createRoute({
        method: "put",
        path: "/users/{id}/limits",
        tags,
        summary: "Set a proxy user's limit overrides",
        description: "Replaces the whole set. Beats role overrides and the route config; applies everywhere within the key cache TTL.",
        request: { params: userParams, body: jsonBody(overridesInput(), "Overrides by limit name") },
        responses: { 200: json(overridesView, "The stored overrides"), ...problems(400, 404) },
      }),
      async (c) => c.json({ limits: await limits.setUserOverrides(c.var.services.db, c.var.gateway, actorOf(c), c.req.valid("param").id, c.req.valid("json").limits) }, 200),
    )
    .openapi(
      createRoute({ method: "delete", path: "/users/{id}/limits", tags, summary: "Remove a proxy user's limit overrides", request: { params: userParams }, responses: { 204: { description: "Removed" }, ...problems(400, 404) } }),
      async (c) => {
        await limits.clearUserOverrides(c.var.services.db, actorOf(c), c.req.valid("param").id);
        return c.body(null, 204);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/users/{id}/limits/status",
        tags,
        summary: "Current usage and remaining, per limit",
        description: "Every limit counted by user, group or route: the user's own and the shared ones. Limits counted per key or client IP are not listed.",
        request: { params: userParams },
        // A backend that does not answer is reported per limit (`error`), never as a 503 for the whole call.
        responses: { 200: json(statusView, "Usage per limit"), ...problems(400, 404) },
      }),
      async (c) => c.json(await limits.userLimitStatus(c.var.services.db, c.var.gateway, c.env, c.req.valid("param").id), 200),
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/users/{id}/limits/reset",
        tags,
        summary: "Reset a proxy user's quota (or named limits)",
        description:
          "Each chosen counter is reset on its own, so one unreachable backend does not stop the others: `200` when every one was reset, `207` when some were and others' backends did not answer (`results` says which; repeat the call for those), `503 LIMITER_UNAVAILABLE` when none could be reset (nothing changed).",
        request: { params: userParams, body: { ...jsonBody(resetInput, "Which limits (send `{}` for all quotas)"), required: false } },
        responses: resetAnswers(resetView),
      }),
      async (c) => {
        const { db } = c.var.services;
        const id = c.req.valid("param").id;
        const { results } = await limits.resetUserLimits(db, c.var.gateway, c.env, actorOf(c), id, c.req.valid("json")?.names);
        const code = limits.resetAnswerCode(results);
        return c.json({ ...(await limits.userLimitStatus(db, c.var.gateway, c.env, id)), results }, code);
      },
    )
    .openapi(
      createRoute({
        method: "get",
        path: "/limits/{name}/status",
        tags,
        summary: "Usage of a shared limit (a group's, or a route's)",
        description: "For a limit counted by group and/or route only: its counters' usage. Limits counted per user, key or client IP answer 400.",
        request: { params: sharedParams, query: sharedQuery },
        responses: { 200: json(sharedStatusView, "Usage per counter"), ...problems(400, 404) },
      }),
      async (c) => c.json(await limits.sharedLimitStatus(c.var.gateway, c.env, c.req.valid("param").name, c.req.valid("query").group), 200),
    )
    .openapi(
      createRoute({
        method: "post",
        path: "/limits/{name}/reset",
        tags,
        summary: "Reset a shared limit (a group's quota, say)",
        description: "Resets the counters of a limit counted by group and/or route only, each on its own: `200`, `207` or `503` as for a user's reset.",
        request: { params: sharedParams, query: sharedQuery },
        responses: resetAnswers(sharedResetView),
      }),
      async (c) => {
        const { name } = c.req.valid("param");
        const { group } = c.req.valid("query");
        const { results } = await limits.resetSharedLimit(c.var.services.db, c.var.gateway, c.env, actorOf(c), name, group);
        const code = limits.resetAnswerCode(results);
        return c.json({ ...(await limits.sharedLimitStatus(c.var.gateway, c.env, name, group)), results }, code);
      },
    )
    .openapi(
      createRoute({ method: "get", path: "/roles/{id}/limits", tags, summary: "Get a role's limit overrides", request: { params: roleParams }, responses: { 200: json(overridesView, "Overrides"), ...problems(400, 404) } }),
      async (c) => c.json({ limits: await limits.getRoleOverrides(c.var.services.db, c.req.valid("param").id) }, 200),
    )
    .openapi(
      createRoute({
        method: "put",
        path: "/roles/{id}/limits",
        tags,
        summary: "Set a role's limit overrides",
        description: "Replaces the whole set. With several roles a user gets the most generous override of each limit; user overrides beat them.",
        request: { params: roleParams, body: jsonBody(overridesInput(), "Overrides by limit name") },
        responses: { 200: json(overridesView, "The stored overrides"), ...problems(400, 404) },
      }),
      async (c) => c.json({ limits: await limits.setRoleOverrides(c.var.services.db, c.var.gateway, actorOf(c), c.req.valid("param").id, c.req.valid("json").limits) }, 200),
    )
    .openapi(
      createRoute({ method: "delete", path: "/roles/{id}/limits", tags, summary: "Remove a role's limit overrides", request: { params: roleParams }, responses: { 204: { description: "Removed" }, ...problems(400, 404) } }),
      async (c) => {
        await limits.clearRoleOverrides(c.var.services.db, actorOf(c), c.req.valid("param").id);
        return c.body(null, 204);
      },
    );
}
