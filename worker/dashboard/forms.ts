import type { Context } from "hono";
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

