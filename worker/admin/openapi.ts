import { OpenAPIHono, type RouteConfig, type z } from "@hono/zod-openapi";
import type { GatewayEnv } from "../env";
import { GatewayError, problemSchema } from "../errors";

/** Problem responses every admin route can give, plus the ones it names. */
export function problems(...statuses: (400 | 404 | 409)[]) {
  const problemContent = { "application/problem+json": { schema: problemSchema() } };
  const out: RouteConfig["responses"] = {
    401: { description: "Missing or wrong admin token (`ADMIN_UNAUTHORIZED`)", content: problemContent },
    429: { description: "Too many wrong admin tokens from this address (`ADMIN_THROTTLED`, `Retry-After`)", content: problemContent },
  };
  for (const s of statuses) {
    out[s] = {
      description: { 400: "Invalid input (`VALIDATION_FAILED`, `BAD_REQUEST`)", 404: "Not found", 409: "Conflict with current state (`CONFLICT`)" }[s],
      content: problemContent,
    };
  }
  return out;
}

export const jsonBody = <T>(schema: T, description: string) => ({
  required: true,
  description,
  content: { "application/json": { schema } },
});

export const json = <T>(schema: T, description: string) => ({ description, content: { "application/json": { schema } } });

/**
 * A VALIDATION_FAILED problem listing each field of a failed zod parse. The admin API and the
 * dashboard (which validates forms with the same schemas) report bad input the same way.
 */
export function validationFailed(issues: readonly z.core.$ZodIssue[]): GatewayError {
  // Unknown fields come as one issue at the object's path listing the keys; name each key instead.
  const errors = issues.flatMap((i) =>
    i.code === "unrecognized_keys"
      ? i.keys.map((k) => ({ path: [...i.path, k].join("."), message: "unknown field" }))
      : [{ path: i.path.join(".") || "(body)", message: i.message }],
  );
  return new GatewayError("VALIDATION_FAILED", errors.map((e) => `${e.path}: ${e.message}`).join("; "), { errors });
}

/**
 * An OpenAPIHono whose validation failures become VALIDATION_FAILED problems listing each
 * field, instead of the library's default JSON shape.
 */
export const createAdminRouter = () =>
  new OpenAPIHono<GatewayEnv>({
    defaultHook: (result) => {
      if (!result.success) throw validationFailed(result.error.issues);
    },
  });
