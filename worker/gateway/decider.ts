import type { Handler, MiddlewareHandler } from "hono";
import type { GatewayEnv } from "../env";

// error → the chain step that threw it. A WeakMap, so errors need no extra fields and a tag
// never outlives its error.
const deciders = new WeakMap<object, string>();

/** Who refused: the name of the plugin (or `gateway` / `upstream`) that threw `err`, if tagged. */
export function deciderOf(err: unknown): string | undefined {
  return typeof err === "object" && err !== null ? deciders.get(err) : undefined;
}

/**
 * Wraps one step of a route's chain so an error it throws carries the step's name. Hono's
 * compose catches a throw at the step that threw it (the steps outside only see `c.error`), so
 * each wrapper sees exactly its own step's errors, and the audit event can say which plugin
 * refused.
 */
export function tagDecisions(name: string, handler: MiddlewareHandler<GatewayEnv> | Handler<GatewayEnv>): MiddlewareHandler<GatewayEnv> {
  const tag = (err: unknown): never => {
    if (typeof err === "object" && err !== null && !deciders.has(err)) deciders.set(err, name);
    throw err;
  };
  // Not an async function: that would add a promise and a tick per step on every request.
  const wrapped = ((c, next) => {
    let result: unknown;
    try {
      result = (handler as MiddlewareHandler<GatewayEnv>)(c, next);
    } catch (err) {
      tag(err);
    }
    return result instanceof Promise ? result.catch(tag) : result;
  }) as MiddlewareHandler<GatewayEnv>;
  // Keep the step's own name in stack traces and debuggers.
  Object.defineProperty(wrapped, "name", { value: handler.name || name });
  return wrapped;
}
