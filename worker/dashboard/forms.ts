import type { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { validationFailed } from "../admin/openapi";
import type { GatewayEnv } from "../env";
import { GatewayError, type ErrorCode } from "../errors";
import type { AdminActor } from "../services/admin-audit";
import type { StoredSession } from "./session";

export type DashboardEnv = { Bindings: GatewayEnv["Bindings"]; Variables: GatewayEnv["Variables"] & { session: StoredSession } };
export type DashboardContext = Context<DashboardEnv>;

/** Dashboard mutations are audited under their own actor name, with the request id. */
export const uiActor = (c: DashboardContext): AdminActor => ({ actor: "admin-ui", requestId: c.var.requestId });

/** The fields of a posted form; repeated names (checkbox groups) come as arrays. */
export async function formOf(c: DashboardContext): Promise<Record<string, string | string[]>> {
  const body = await c.req.parseBody({ all: true });
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(body)) {
    if (Array.isArray(v)) out[k] = v.filter((x): x is string => typeof x === "string");
    else if (typeof v === "string") out[k] = v;
  }
  return out;
}
export const str = (v: string | string[] | undefined) => (Array.isArray(v) ? (v[0] ?? "") : (v ?? "")).trim();
export const list = (v: string | string[] | undefined) => (Array.isArray(v) ? v : v ? [v] : []).map((s) => s.trim()).filter(Boolean);

/**
 * A form's input checked with the admin API's own zod schema (imported from worker/admin, never
 * copied), so the dashboard accepts exactly what the API accepts; bad input is the same
 * VALIDATION_FAILED problem, field by field.
 */
export function parseForm<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw validationFailed(parsed.error.issues);
  return parsed.data;
}

/** A rejected form, kept for the page that answers it: what the operator typed and each field's problem. */
export interface FormDraft<V = Record<string, string>> {
  values: V;
  /** Field name → the problem shown beside that field. */
  errors: Map<string, string>;
}

/** Problems a form answers with the page itself (400 / 409), its fields marked: bad input and taken names. */
export const isFieldProblem = (err: unknown): err is GatewayError => err instanceof GatewayError && (err.code === "VALIDATION_FAILED" || err.code === "CONFLICT");

/**
 * Field name → message from a VALIDATION_FAILED's `errors` (a path names its field by its first
 * segment: `permissions.2` → `permissions`; the first problem of a field wins) or a CONFLICT
 * (a taken name: `conflictField`). `describe` can reword a message, e.g. to quote the bad item of a list.
 */
export function fieldErrors(err: GatewayError, opts: { conflictField?: string; describe?: (path: string, message: string) => string } = {}): Map<string, string> {
  const out = new Map<string, string>();
  if (err.code === "CONFLICT" && opts.conflictField) out.set(opts.conflictField, err.detail);
  for (const e of err.extra.errors ?? []) {
    const field = e.path.split(".")[0]!;
    if (!out.has(field)) out.set(field, opts.describe ? opts.describe(e.path, e.message) : e.message);
  }
  return out;
}

/**
 * Runs a form's action; a GatewayError (validation, conflict, not found — and the server-side
 * codes in `alsoShow`, e.g. an unreachable limiter) sends the browser back to `back` with the
 * problem's detail shown on the page. Details never hold secrets.
 */
export async function formAction(c: DashboardContext, back: string, action: () => Promise<string>, alsoShow: readonly ErrorCode[] = []): Promise<Response> {
  try {
    return c.redirect(await action(), 303);
  } catch (err) {
    if (err instanceof GatewayError && (err.status < 500 || alsoShow.includes(err.code))) {
      const sep = back.includes("?") ? "&" : "?";
      return c.redirect(`${back}${sep}error=${encodeURIComponent(err.detail)}`, 303);
    }
    throw err;
  }
}

