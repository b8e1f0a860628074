// @ts-check
import createClient from "openapi-fetch";
import { CliError, EXIT, exitCodeForStatus } from "./errors.js";

/** @typedef {import("./admin-api").paths} Paths */
/** @typedef {import("./admin-api").components["schemas"]} Schemas */
/** @typedef {import("openapi-fetch").Client<Paths>} AdminClient */

/**
 * The admin API client: openapi-fetch typed by cli/admin-api.d.ts, which is generated from the
 * gateway's own OpenAPI document (npm run cli:types) — so the CLI holds no copy of the shapes.
 *
 * @param {{ url: string, token: string }} target
 * @returns {AdminClient}
 */
export function adminClient({ url, token }) {
  return createClient({
    baseUrl: `${url.replace(/\/+$/, "")}/admin/v1`,
    headers: { authorization: `Bearer ${token}`, "user-agent": "portcullis-cli" },
    // A gateway that is down or unreachable is a server-side failure, with its own exit code.
    fetch: async (req) => {
      try {
        return await fetch(req);
      } catch (err) {
        const cause = /** @type {any} */ (err)?.cause;
        throw new CliError(`Cannot reach the gateway at ${url}: ${cause?.code ?? cause?.message ?? String(err)}`, EXIT.SERVER);
      }
    },
  });
}

/**
 * The data of a successful call, or a CliError carrying the problem's detail, code and requestId.
 *
 * @template T
 * @param {Promise<{ data?: T, error?: any, response: Response }>} call
 * @returns {Promise<NonNullable<T>>}
 */
export async function ok(call) {
  const { data, error, response } = await call;
  if (response.ok && data !== undefined) return /** @type {NonNullable<T>} */ (data);
  if (response.ok) return /** @type {any} */ ({});
  const problem = error && typeof error === "object" ? error : {};
  const detail = problem.detail ?? (typeof error === "string" && error ? error : response.statusText || `HTTP ${response.status}`);
  throw new CliError(String(detail), exitCodeForStatus(response.status, problem.code), {
    code: problem.code,
    requestId: problem.requestId ?? response.headers.get("x-request-id") ?? undefined,
    status: response.status,
    errors: problem.errors,
  });
}

/**
 * Every item of a paginated list, following `nextCursor`.
 *
 * @template T
 * @param {(cursor: string | undefined) => Promise<{ data: T[], nextCursor: string | null }>} fetchPage
 * @returns {Promise<T[]>}
 */
export async function all(fetchPage) {
  /** @type {T[]} */
  const out = [];
  let cursor;
  do {
    const page = await fetchPage(cursor);
    out.push(...page.data);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return out;
}

/**
 * The object an id-shaped reference names, else the one with that name. Names may look like ids
 * (the API takes `usr_billing` as a user's name), so an id that names nothing is tried as a name
 * before the CLI gives up with the id lookup's own 404.
 *
 * @template T
 * @param {string} ref
 * @param {RegExp} idShape
 * @param {() => Promise<{ data?: T, error?: any, response: Response }>} byId
 * @param {() => Promise<{ data?: { data: T[] }, error?: any, response: Response }>} byName
 * @param {() => CliError} notFound
 * @returns {Promise<NonNullable<T>>}
 */
async function resolveRef(ref, idShape, byId, byName, notFound) {
  if (idShape.test(ref)) {
    try {
      return await ok(byId());
    } catch (err) {
      if (!(err instanceof CliError && err.exitCode === EXIT.NOT_FOUND)) throw err;
      const named = (await ok(byName())).data[0];
      if (named) return /** @type {NonNullable<T>} */ (named);
      throw err;
    }
  }
  const named = (await ok(byName())).data[0];
  if (!named) throw notFound();
  return /** @type {NonNullable<T>} */ (named);
}

/**
 * A user from an id (`usr_…`) or a name.
 * @param {AdminClient} api
 * @param {string} ref
 */
export function resolveUser(api, ref) {
  return resolveRef(
    ref,
    /^usr_[0-9A-Za-z]+$/,
    () => api.GET("/users/{id}", { params: { path: { id: ref } } }),
    () => api.GET("/users", { params: { query: { name: ref, limit: 1 } } }),
    () => new CliError(`No proxy user named "${ref}".`, EXIT.NOT_FOUND, { code: "USER_NOT_FOUND" }),
  );
}

/**
 * A user id to filter or address records by, from an id or a name: the user's id while it
 * exists, else an id-shaped reference as given. Audit events and a secret bound before the
 * user's deletion (older gateways kept those) outlive the user: its id must still find them.
 * @param {AdminClient} api
 * @param {string} ref
 */
export async function userIdOf(api, ref) {
  try {
    return (await resolveUser(api, ref)).id;
  } catch (err) {
    if (err instanceof CliError && err.exitCode === EXIT.NOT_FOUND && /^usr_[0-9A-Za-z]+$/.test(ref)) return ref;
    throw err;
  }
}

/**
 * A role from an id (`rol_…`) or a name.
 * @param {AdminClient} api
 * @param {string} ref
 */
export function resolveRole(api, ref) {
  return resolveRef(
    ref,
    /^rol_[0-9A-Za-z]+$/,
    () => api.GET("/roles/{id}", { params: { path: { id: ref } } }),
    () => api.GET("/roles", { params: { query: { name: ref, limit: 1 } } }),
    () => new CliError(`No role named "${ref}".`, EXIT.NOT_FOUND, { code: "ROLE_NOT_FOUND" }),
  );
}

/**
 * What a command module gets to build its commands (see `extraCommands` in main.js).
 * @typedef {{ apiFor: (cmd: import("commander").Command) => AdminClient, globals: (cmd: import("commander").Command) => { json?: boolean } }} CommandHelpers
 */
