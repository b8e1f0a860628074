import type { MiddlewareHandler } from "hono";
import type { GatewayEnv } from "../env";

/** A plugin ready to run: its name (for ordering, disabling, overriding) and its middleware. */
export interface PluginInstance {
  readonly name: string;
  readonly handler: MiddlewareHandler<GatewayEnv>;
  /** The parsed options it was created with (read by the gateway, e.g. audit's pre-chain fallback). */
  readonly options?: unknown;
}

/** An upstream after config load: the origin every route to it is pinned to. */
export interface CompiledUpstream {
  readonly name: string;
  /** Base URL from the config; may be replaced by the var named in `urlFromEnv`. */
  readonly url: string;
  readonly urlFromEnv: string | undefined;
  readonly credential: { header: string; fromEnv: string; prefix: string } | undefined;
  readonly timeoutMs: number;
}

/** A route after config load: matcher, method set and its fully resolved plugin chain. */
export interface CompiledRoute {
  readonly name: string;
  /** The pattern as written, e.g. `/demo/*`. */
  readonly path: string;
  /** The literal part before `/*` (or the whole exact path). */
  readonly prefix: string;
  /** True when the route forwards whatever follows `prefix`. */
  readonly wildcard: boolean;
  readonly methods: ReadonlySet<string>;
  readonly upstream: string;
  /** Permission the caller must hold (checked by the authorize plugin). */
  readonly permission: string | undefined;
  readonly plugins: readonly PluginInstance[];
}

export interface CompiledGateway {
  readonly upstreams: ReadonlyMap<string, CompiledUpstream>;
  /** The global chain as declared (routes hold their own resolved chains). */
  readonly globalPlugins: readonly PluginInstance[];
  readonly routes: readonly CompiledRoute[];
}
