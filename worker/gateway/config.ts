import { z } from "@hono/zod-openapi";
import { PERMISSION_PATTERN } from "../lib/permissions";
import { limitRegistry, type LimitDefinition } from "../limits/engine";
import type { CompiledGateway, CompiledRoute, CompiledUpstream, PluginInstance, RouteAccess } from "./types";

export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
// RFC 9110 token: what a header name may be.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

const pluginInstance = z.custom<PluginInstance>(
  (v) => typeof v === "object" && v !== null && typeof (v as PluginInstance).name === "string" && typeof (v as PluginInstance).handler === "function",
  "expected a plugin instance, e.g. keyAuth()",
);

const requiredPermission = z
  .string()
  .regex(PERMISSION_PATTERN)
  .refine((p) => !p.includes("*"), "a required permission is literal (wildcards belong in roles)");

export const upstreamSchema = z.strictObject({
  url: z
    .url({ protocol: /^https?$/, error: "must be an absolute http(s) URL" })
    .refine((u) => !/[?#]/.test(u) && !new URL(u).username && !new URL(u).password, "must not carry a query, fragment or credentials")
    .describe("Origin base URL; a route's path remainder is appended to its path"),
  urlFromEnv: z.string().regex(ENV_NAME).optional().describe("Name of a var that, when set, replaces `url` (e.g. per environment)"),
  credential: z
    .strictObject({
      header: z.string().regex(HEADER_NAME).describe("Header the origin expects its credential in"),
      fromEnv: z.string().regex(ENV_NAME).describe("Worker secret or var holding the credential"),
      prefix: z.string().regex(/^[\x20-\x7e]*$/).default("").describe('Text before the secret, e.g. "Bearer "'),
    })
    .optional()
    .describe("Origin credential injected on every forwarded request (the client's own credential is never forwarded)"),
  timeoutMs: z.number().int().positive().max(300_000).default(30_000).describe("How long to wait for the origin's status and headers (504 UPSTREAM_TIMEOUT); a body that has started streams on"),
  idleTimeoutMs: z
    .number()
    .int()
    .positive()
    .max(300_000)
    .optional()
    .describe("Longest wait for each next piece of the origin's response body once the client asks for it; past it the origin connection is closed and the client's body ends in an error. Unset: a body that has started streams for as long as the origin sends"),
  identityHeaders: z
    .boolean()
    .default(true)
    .describe(
      "Tell this origin who called: x-portcullis-user-id, -user-name, -user-group and -key-id. Set false for a third-party API that has no use for (and should not learn) your proxy users' ids and names; clients still cannot send these headers either way",
    ),
});

export const routeSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9-_]*$/).describe("Route name, used in logs and audit"),
  path: z
    .string()
    .regex(/^\/([A-Za-z0-9_\-.~]+(\/[A-Za-z0-9_\-.~]+)*)?(\/\*)?$/, "must be /literal/segments with an optional trailing /*")
    .refine((p) => !p.split("/").some((s) => s === "." || s === ".."), "must not contain dot segments")
    .describe("`/exact/path`, or `/prefix/*` to forward everything below the prefix"),
  methods: z.array(z.enum(HTTP_METHODS)).min(1).default(["GET", "HEAD"]).describe("Allowed methods (others get 405); HEAD is implied by GET"),
  upstream: z.string().describe("Key into `upstreams`"),
  permission: z
    .union([
      requiredPermission,
      z.strictObject({ anyOf: z.array(requiredPermission).min(1).describe("The caller must hold at least one of these") }),
      z.strictObject({ allOf: z.array(requiredPermission).min(1).describe("The caller must hold every one of these") }),
    ])
    .optional()
    .describe("Permission the caller must hold (`orders:read`), or `{ anyOf: [...] }` / `{ allOf: [...] }`"),
  plugins: z.array(pluginInstance).default([]).describe("Route plugins, after the global chain; one named like a global plugin replaces it in place"),
  disablePlugins: z.array(z.string()).default([]).describe("Names of global plugins this route skips"),
  websocket: z
    .boolean()
    .default(false)
    .describe(
      "Proxy WebSocket upgrades (GET with `Upgrade: websocket`): the chain runs on the handshake as on any request, then messages flow between client and origin without passing the plugins. Off: `Upgrade` is dropped like any hop-by-hop header and the origin sees a plain GET",
    ),
});

export const gatewaySchema = z
  .strictObject({
    upstreams: z.record(z.string().regex(/^[a-z0-9][a-z0-9-_]*$/), upstreamSchema).describe("Named origins"),
    plugins: z.array(pluginInstance).default([]).describe("Global chain, run in this order on every route"),
    routes: z.array(routeSchema).min(1).describe("First matching route wins"),
  })
  .superRefine((g, ctx) => {
    const names = new Set<string>();
    const paths = new Set<string>();
    const globalNames = new Set(g.plugins.map((p) => p.name));
    const reportPluginIssues = (plugins: readonly PluginInstance[], at: (string | number)[]) =>
      plugins.forEach((p, j) => {
        for (const issue of p.configIssues ?? []) {
          ctx.addIssue({ code: "custom", path: [...at, j, ...issue.path.map((k) => (typeof k === "number" ? k : String(k)))], message: issue.message });
        }
      });
    reportPluginIssues(g.plugins, ["plugins"]);
    g.plugins.forEach((p, j) => {
      if (g.plugins.findIndex((q) => q.name === p.name) !== j) ctx.addIssue({ code: "custom", path: ["plugins", j], message: `plugin "${p.name}" appears twice in the global chain` });
    });
    // One limit name, one counter: status, resets and overrides find a limit by its name.
    const limitsByName = new Map<string, { def: LimitDefinition; route: string }>();
    g.routes.forEach((r, i) => {
      reportPluginIssues(r.plugins, ["routes", i, "plugins"]);
      r.plugins.forEach((p, j) => {
        if (r.plugins.findIndex((q) => q.name === p.name) !== j) ctx.addIssue({ code: "custom", path: ["routes", i, "plugins", j], message: `plugin "${p.name}" appears twice in this route's plugins` });
      });
      if (!(r.upstream in g.upstreams)) ctx.addIssue({ code: "custom", path: ["routes", i, "upstream"], message: `unknown upstream "${r.upstream}"` });
      if (names.has(r.name)) ctx.addIssue({ code: "custom", path: ["routes", i, "name"], message: `duplicate route name "${r.name}"` });
      if (paths.has(r.path)) ctx.addIssue({ code: "custom", path: ["routes", i, "path"], message: `duplicate route path "${r.path}"` });
      names.add(r.name);
      paths.add(r.path);
      if (r.websocket && !r.methods.includes("GET")) ctx.addIssue({ code: "custom", path: ["routes", i, "websocket"], message: "a WebSocket handshake is a GET: add GET to methods" });
      for (const d of r.disablePlugins) {
        if (!globalNames.has(d)) ctx.addIssue({ code: "custom", path: ["routes", i, "disablePlugins"], message: `no global plugin named "${d}"` });
      }
      const chain = effectiveChain(g.plugins, r.plugins, r.disablePlugins);
      for (const p of chain) {
        const def = limitRegistry.get(p.handler);
        if (!def) continue;
        const seen = limitsByName.get(def.name);
        if (!seen) limitsByName.set(def.name, { def, route: r.name });
        else if (seen.def !== def) {
          const differs = COUNTER_FIELDS.filter((f) => JSON.stringify(def[f]) !== JSON.stringify(seen.def[f]));
          if (differs.length) {
            ctx.addIssue({
              code: "custom",
              path: ["routes", i, "plugins"],
              message: `limit "${def.name}" is declared with other ${differs.join(", ")} than on route "${seen.route}": one name is one counter, so give this limit its own name`,
            });
          }
        }
      }
      const firstAuthenticator = chain.findIndex((p) => p.traits?.authenticator);
      if (chain.some((p) => p.name === "authorize")) {
        if (!r.permission) ctx.addIssue({ code: "custom", path: ["routes", i, "permission"], message: "required when the authorize plugin runs on this route" });
        const at = chain.findIndex((p) => p.name === "authorize");
        if (firstAuthenticator === -1 || firstAuthenticator > at) {
          ctx.addIssue({ code: "custom", path: ["routes", i, "plugins"], message: "authorize runs before any authenticator (key-auth, jwt-auth): it would refuse every request" });
        }
      } else if (r.permission) {
        // Only authorize enforces a route's permission: without it the route would look protected
        // in gateway.config.ts and forward every request.
        ctx.addIssue({ code: "custom", path: ["routes", i, "permission"], message: "nothing enforces it: the authorize plugin does not run on this route (add authorize() or drop the permission)" });
      }
      chain.forEach((p, at) => {
        if (!p.traits?.needsIdentity || (firstAuthenticator !== -1 && firstAuthenticator < at)) return;
        // Reported at the plugin where the route declares it (a global one: at the global chain).
        const own = r.plugins.indexOf(p);
        const global = g.plugins.indexOf(p);
        ctx.addIssue({
          code: "custom",
          path: own !== -1 ? ["routes", i, "plugins", own] : global !== -1 ? ["plugins", global] : ["routes", i, "plugins"],
          message: `reads the caller's identity, but runs before any authenticator (key-auth, jwt-auth)${own === -1 ? ` on route "${r.name}"` : ""}: it would only ever see anonymous requests`,
        });
      });
      const preflight = chain.findIndex((p) => p.traits?.answersPreflight);
      if (preflight !== -1 && firstAuthenticator !== -1 && firstAuthenticator < preflight) {
        ctx.addIssue({
          code: "custom",
          path: ["routes", i, "plugins"],
          message: `"${chain[preflight]!.name}" must run before "${chain[firstAuthenticator]!.name}": browsers send CORS preflights without credentials (put it first in the global chain)`,
        });
      }
    });
  });

/** What decides a limit's counter and its size; declarations of one limit name must agree on them (dryRun, failMode, timeouts, leases and headers may differ per route). */
const COUNTER_FIELDS = ["kind", "algorithm", "limit", "windowMs", "period", "by", "backend", "durableObjectBinding", "upstash"] as const satisfies readonly (keyof LimitDefinition)[];

export type GatewayConfigInput = z.input<typeof gatewaySchema>;
export type UpstreamConfigInput = z.input<typeof upstreamSchema>;
export type RouteConfigInput = z.input<typeof routeSchema>;

/** Thrown when gateway.config.ts is invalid; the message names each route/field at fault. */
export class GatewayConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GatewayConfigError";
  }
}

function effectiveChain(global: readonly PluginInstance[], route: readonly PluginInstance[], disabled: readonly string[]): PluginInstance[] {
  const overrides = new Map(route.map((p) => [p.name, p]));
  const chain = global.filter((p) => !disabled.includes(p.name)).map((p) => overrides.get(p.name) ?? p);
  const inChain = new Set(chain.map((p) => p.name));
  return [...chain, ...route.filter((p) => !inChain.has(p.name))];
}

/**
 * Validates and compiles the gateway config once (at module load), so nothing on the hot path
 * re-parses it. Throws GatewayConfigError naming the route, plugin and field at fault.
 *
 * @example
 * export default defineGateway({
 *   upstreams: { orders: { url: "https://orders.internal.example", credential: { header: "Authorization", prefix: "Bearer ", fromEnv: "ORDERS_TOKEN" } } },
 *   plugins: [keyAuth(), authorize()],
 *   routes: [{ name: "orders", path: "/orders/*", methods: ["GET", "POST"], upstream: "orders", permission: "orders:read" }],
 * });
 */
export function defineGateway(input: GatewayConfigInput): CompiledGateway {
  const parsed = gatewaySchema.safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const path = i.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("");
      const where: string[] = [];
      let plugins: readonly unknown[] | undefined = input.plugins;
      let pluginAt = 1;
      if (i.path[0] === "routes" && typeof i.path[1] === "number") {
        const route = input.routes?.[i.path[1]];
        where.push(`route "${route?.name ?? i.path[1]}"`);
        plugins = route?.plugins;
        pluginAt = 3;
      }
      const plugin = i.path[pluginAt - 1] === "plugins" && typeof i.path[pluginAt] === "number" ? plugins?.[i.path[pluginAt] as number] : undefined;
      if (plugin && typeof (plugin as PluginInstance).name === "string") where.push(`plugin "${(plugin as PluginInstance).name}"`);
      return `  gateway${path}${where.length ? ` (${where.join(", ")})` : ""}: ${i.message}`;
    });
    throw new GatewayConfigError(`invalid gateway config:\n${lines.join("\n")}`);
  }
  const g = parsed.data;
  const upstreams = new Map<string, CompiledUpstream>(
    Object.entries(g.upstreams).map(([name, u]) => [name, { name, url: u.url, urlFromEnv: u.urlFromEnv, credential: u.credential, timeoutMs: u.timeoutMs, idleTimeoutMs: u.idleTimeoutMs, identityHeaders: u.identityHeaders }]),
  );
  const routes: CompiledRoute[] = g.routes.map((r) => {
    const wildcard = r.path.endsWith("/*");
    const methods = new Set<string>(r.methods);
    if (methods.has("GET")) methods.add("HEAD");
    const plugins = effectiveChain(g.plugins, r.plugins, r.disablePlugins);
    const access: RouteAccess | undefined = typeof r.permission === "string" ? { allOf: [r.permission] } : r.permission;
    return {
      name: r.name,
      path: r.path,
      prefix: wildcard ? r.path.slice(0, -2) : r.path,
      wildcard,
      methods,
      upstream: r.upstream,
      permission: typeof r.permission === "string" ? r.permission : undefined,
      access,
      plugins,
      authenticators: plugins.filter((p) => p.traits?.authenticator).map((p) => p.name),
      answersPreflight: plugins.some((p) => p.traits?.answersPreflight),
      clearsIdentity: !plugins.every((p) => p.traits?.leavesIdentityHeaders),
      websocket: r.websocket,
    };
  });
  return { upstreams, routes, globalPlugins: g.plugins };
}
