import type { MiddlewareHandler } from "hono";
import type { z } from "@hono/zod-openapi";
import type { GatewayEnv } from "../env";
import type { PluginInstance } from "./types";

export interface PluginDefinition<S extends z.ZodType> {
  /** Unique name; routes use it to disable or override a global plugin. */
  name: string;
  /** Options schema. Give every field `.describe()` and, where it has one, `.default()`. */
  config: S;
  /** Called once per config load with the parsed options; returns the per-request middleware. */
  create: (config: z.output<S>) => MiddlewareHandler<GatewayEnv>;
}

/** Thrown at config load when a plugin's options are invalid; names the plugin and fields. */
export class PluginConfigError extends Error {
  constructor(plugin: string, issues: string) {
    super(`plugin "${plugin}": invalid options: ${issues}`);
    this.name = "PluginConfigError";
  }
}

/**
 * Declares a plugin: a named Hono middleware with validated options. The returned factory
 * parses its options immediately, so a bad option fails when `gateway.config.ts` loads,
 * never on a request.
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
export function definePlugin<S extends z.ZodType>(def: PluginDefinition<S>) {
  const factory = (...args: {} extends z.input<S> ? [options?: z.input<S>] : [options: z.input<S>]): PluginInstance => {
    const parsed = def.config.safeParse(args[0] ?? {});
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(options)"}: ${i.message}`).join("; ");
      throw new PluginConfigError(def.name, issues);
    }
    return { name: def.name, handler: def.create(parsed.data), options: parsed.data };
  };
  return Object.assign(factory, { pluginName: def.name });
}
