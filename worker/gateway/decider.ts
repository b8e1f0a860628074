import type { Context, Handler, MiddlewareHandler } from "hono";
import type { GatewayEnv } from "../env";

// error → the chain step that threw it. A WeakMap, so errors need no extra fields and a tag
// never outlives its error.
const deciders = new WeakMap<object, string>();

/** Who refused: the name of the plugin (or `gateway` / `upstream`) that threw `err`, if tagged. */
export function deciderOf(err: unknown): string | undefined {
  return typeof err === "object" && err !== null ? deciders.get(err) : undefined;
}

/**
 * JavaScript lets a plugin throw anything (`throw "nope"`, a rejected `undefined`). Hono's error
 * handler only catches an Error: anything else escaped the app, so the runtime answered with its
 * own error page (no problem+json, no request id, no audit event). Wrapped here, it is a 500
 * INTERNAL like any other unexpected error; what was thrown is kept as the cause for the log.
 */
function asError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  let text: string;
  try {
    text = String(thrown);
  } catch {
    text = typeof thrown; // e.g. an object without a prototype
  }
  return new Error(`non-Error thrown: ${text}`, { cause: thrown });
}

/**
 * Wraps one step of a route's chain so an error it throws carries the step's name. Hono's
 * compose catches a throw at the step that threw it (the steps outside only see `c.error`), so
 * each wrapper sees exactly its own step's errors, and the audit event can say which plugin
 * refused.
 */
export function tagDecisions(
  name: string,
  handler: MiddlewareHandler<GatewayEnv> | Handler<GatewayEnv>,
  /** Applied to a Response the step returns (a plugin answering without calling `next`). */
  answered?: (c: Context<GatewayEnv>, res: Response) => Response,
): MiddlewareHandler<GatewayEnv> {
  const tag = (thrown: unknown): never => {
    const err = asError(thrown);
    if (!deciders.has(err)) deciders.set(err, name);
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
    if (!answered) return result instanceof Promise ? result.catch(tag) : result;
    // Only an answer Hono will use: once a step behind this one has answered (`c.finalized`), a
    // returned Response (`await next(); return c.res`) is ignored by compose, so it is left alone.
    const own = (r: unknown) => (r instanceof Response && !c.finalized ? answered(c, r) : r);
    // One reaction either way: `then(own, tag)` costs what `catch(tag)` does.
    return result instanceof Promise ? result.then(own, tag) : own(result);
  }) as MiddlewareHandler<GatewayEnv>;
  // Keep the step's own name in stack traces and debuggers.
  Object.defineProperty(wrapped, "name", { value: handler.name || name });
  return wrapped;
}
