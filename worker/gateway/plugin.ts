import type { Context, MiddlewareHandler } from "hono";
import type { z } from "@hono/zod-openapi";
import type { GatewayEnv } from "../env";
import { GatewayError } from "../errors";
import type { PluginInstance, PluginTraits } from "./types";

/** The middleware a plugin's `create` returns: an ordinary Hono middleware over the gateway's context. */
export type GatewayMiddleware = MiddlewareHandler<GatewayEnv>;
/**
 * The context a plugin sees: `c.get("requestId")`, clientIp, route, upstream, identity, bag, …
 * Prefer `c.get(name)` to `c.var.name` on the request path: Hono builds a fresh object of every
 * variable on each `c.var` access.
 */
export type GatewayContext = Context<GatewayEnv>;

export interface PluginDefinition<S extends z.ZodType> {
  /** Unique name; routes use it to disable or override a global plugin. Lowercase, dashes. */
  name: string;
  /** Options schema. Give every field `.describe()` and, where it has one, `.default()`. */
  config: S;
  /**
   * What the gateway must know about the plugin (authenticator, answers CORS preflights, needs
   * the caller's identity); a function of the parsed options when they depend on them.
   */
  traits?: PluginTraits | ((config: z.output<S>) => PluginTraits);
  /** Called once per config load with the parsed options; returns the per-request middleware. */
  create: (config: z.output<S>) => GatewayMiddleware;
}

/** A plugin factory: call it with the plugin's options (typed from its zod schema) to get an instance. */
export type PluginFactory<S extends z.ZodType> = ((
  ...args: {} extends z.input<S> ? [options?: z.input<S>] : [options: z.input<S>]
) => PluginInstance) & { readonly pluginName: string; readonly schema: S };

/** Thrown for a plugin instance whose options are invalid; names the plugin and fields. */
export class PluginConfigError extends Error {
  constructor(plugin: string, issues: string) {
    super(`plugin "${plugin}": invalid options: ${issues}`);
    this.name = "PluginConfigError";
  }
}

const PLUGIN_NAME = /^[a-z][a-z0-9-]{0,63}$/;

/** `a.b[0].c: message; …` — the field paths of a plugin's option errors. */
export function formatIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  return issues.map((i) => `${i.path.map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`)).join("").replace(/^\./, "") || "(options)"}: ${i.message}`).join("; ");
}

/**
 * Declares a plugin: a named Hono middleware with validated options. The returned factory
 * parses its options at once (never per request). Invalid options do not throw from the
 * factory, because the factory runs inside the `routes: [...]` literal where the route is not
 * yet known; `defineGateway` reports them, naming the route, the plugin and the field, and
 * refuses to load. An invalid instance used outside `defineGateway` refuses every request.
 *
 * @example
 * export const requireHeader = definePlugin({
 *   name: "require-header",
 *   config: z.strictObject({ header: z.string().describe("Header that must be present") }),
 *   create: ({ header }) => async function requireHeader(c, next) {
 *     if (!c.req.header(header)) throw new GatewayError("BAD_REQUEST", `${header} is required.`);
 *     await next();
 *   },
 * });
 * // gateway.config.ts: plugins: [keyAuth(), requireHeader({ header: "X-Team" })]
 */
export function definePlugin<S extends z.ZodType>(def: PluginDefinition<S>): PluginFactory<S> {
  if (!PLUGIN_NAME.test(def.name)) throw new Error(`plugin name "${def.name}" must be lowercase letters, digits and dashes`);
  const factory = (...args: unknown[]): PluginInstance => {
    const parsed = def.config.safeParse(args[0] ?? {});
    if (!parsed.success) {
      const configIssues = parsed.error.issues.map((i) => ({ path: i.path, message: i.message }));
      const message = new PluginConfigError(def.name, formatIssues(configIssues)).message;
      return {
        name: def.name,
        traits: typeof def.traits === "function" ? undefined : def.traits,
        configIssues,
        handler: async function invalidPlugin() {
          console.error(JSON.stringify({ level: "error", msg: "plugin with invalid options", plugin: def.name, error: message }));
          throw new GatewayError("GATEWAY_MISCONFIGURED", `Plugin "${def.name}" is misconfigured.`);
        },
      };
    }
    const traits = typeof def.traits === "function" ? def.traits(parsed.data) : def.traits;
    return { name: def.name, traits, options: parsed.data, handler: def.create(parsed.data) };
  };
  return Object.assign(factory, { pluginName: def.name, schema: def.config }) as unknown as PluginFactory<S>;
}

/**
 * Wraps an ordinary Hono middleware (e.g. one from `hono/*`) as a named plugin without options,
 * so it can sit in a chain and be disabled or overridden by name.
 *
 * @example plugins: [fromMiddleware("etag", etag()), keyAuth()]
 */
export function fromMiddleware(name: string, handler: MiddlewareHandler, traits?: PluginTraits): PluginInstance {
  if (!PLUGIN_NAME.test(name)) throw new Error(`plugin name "${name}" must be lowercase letters, digits and dashes`);
  return { name, handler: handler as GatewayMiddleware, traits, options: {} };
}

/**
 * A typed slot in the per-request bag, for data one plugin leaves for another. The name is the
 * bag key: prefix it with your plugin's name.
 *
 * @example
 * const tenant = bagSlot<string>("tenant-router.tenant");
 * tenant.set(c, "acme");      // in one plugin
 * tenant.get(c);              // "acme" | undefined, in a later one
 */
export function bagSlot<T>(name: string) {
  return {
    name,
    get: (c: GatewayContext): T | undefined => c.get("bag").get(name) as T | undefined,
    set: (c: GatewayContext, value: T): void => void c.get("bag").set(name, value),
  };
}
