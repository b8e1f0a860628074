import type { MiddlewareHandler } from "hono";
import type { GatewayEnv } from "../env";

/** What the gateway needs to know about a plugin beyond its middleware. */
export interface PluginTraits {
  /**
   * The plugin establishes `c.var.identity` from a credential (key-auth, jwt-auth). When a route
   * runs several authenticators, any one of them may satisfy it: see docs/plugins.md.
   */
  readonly authenticator?: boolean;
  /** The plugin answers CORS preflights itself, so the route lets `OPTIONS` preflights reach it. */
  readonly answersPreflight?: boolean;
  /**
   * The plugin never sets an `x-portcullis-*` identity header on the upstream request. On a route
   * where every plugin says so the forwarder skips clearing them (four deletes on a route without
   * an identity: ~11 k instructions a request); any plugin without it (a custom one) makes the
   * forwarder clear them.
   */
  readonly leavesIdentityHeaders?: boolean;
  /**
   * The plugin decides by the caller's identity (`c.get("identity")`: its group, user, key), so it
   * must run after an authenticator: config load refuses a chain where it runs before all of them
   * (or where there is none), as it does for `authorize`. Before one it would only ever see an
   * anonymous request and, for a rule that applies to some callers, never apply.
   */
  readonly needsIdentity?: boolean;
}

/** A plugin ready to run: its name (for ordering, disabling, overriding) and its middleware. */
export interface PluginInstance {
  readonly name: string;
  readonly handler: MiddlewareHandler<GatewayEnv>;
  readonly traits?: PluginTraits;
  /** The parsed options (what `create` received); undefined when they were invalid. */
  readonly options?: unknown;
  /** Option errors found by the factory; `defineGateway` reports them with the route's name. */
  readonly configIssues?: readonly { path: readonly PropertyKey[]; message: string }[];
}

/**
 * Per-request settings of the origin call. `bindRoute` starts them from the upstream's config;
 * plugins may tighten them before `next()`.
 */
export interface ForwardOptions {
  /** How long to wait for the origin's status and headers (504 UPSTREAM_TIMEOUT); a body that has started streams on. */
  timeoutMs: number;
  /**
   * Longest wait for each next piece of the origin's body once the client asks for it; past it the
   * origin connection is closed and the client's body errors. Unset: no bound (the default).
   */
  idleTimeoutMs?: number;
  /** When set, sent instead of the client's body (e.g. a body a plugin has already read and checked). */
  body?: ArrayBuffer | ReadableStream | null;
  /** Refuse (by Content-Length) or cut off (while streaming) an origin response larger than this. */
  maxResponseBytes?: number;
  /**
   * Credential values injected into this request. A response header whose value contains one
   * is dropped, so an origin that reflects its credential cannot leak it to the caller.
   */
  injectedSecrets: string[];
}

/** Which permissions a route requires: any one of them, or all of them. */
export type RouteAccess = { readonly anyOf: readonly string[] } | { readonly allOf: readonly string[] };

/** An upstream after config load: the origin every route to it is pinned to. */
export interface CompiledUpstream {
  readonly name: string;
  /** Base URL from the config; may be replaced by the var named in `urlFromEnv`. */
  readonly url: string;
  readonly urlFromEnv: string | undefined;
  readonly credential: { header: string; fromEnv: string; prefix: string } | undefined;
  readonly timeoutMs: number;
  /** Longest wait for each next body chunk once the client asks for it (unset: none). */
  readonly idleTimeoutMs: number | undefined;
  /** Whether the forwarder sends the caller's identity headers (x-portcullis-user-*, -key-id). */
  readonly identityHeaders: boolean;
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
  /** The route's `permission` when it is a single string (kept for logs and audit). */
  readonly permission: string | undefined;
  /** Permissions the caller must hold (checked by the authorize plugin); undefined = none configured. */
  readonly access: RouteAccess | undefined;
  readonly plugins: readonly PluginInstance[];
  /** Names of the authenticator plugins in `plugins`, in chain order. */
  readonly authenticators: readonly string[];
  /** Whether a plugin in the chain answers CORS preflights. */
  readonly answersPreflight: boolean;
  /** A plugin on the route may have set identity headers (no `leavesIdentityHeaders` trait): the forwarder clears them. */
  readonly clearsIdentity: boolean;
  /** Proxies WebSocket upgrades (`websocket: true`); otherwise `Upgrade` is dropped as hop-by-hop. */
  readonly websocket: boolean;
}

export interface CompiledGateway {
  readonly upstreams: ReadonlyMap<string, CompiledUpstream>;
  readonly routes: readonly CompiledRoute[];
  /** The global chain as declared (routes hold their own resolved chains). */
  readonly globalPlugins: readonly PluginInstance[];
}
