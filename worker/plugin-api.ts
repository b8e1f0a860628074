/**
 * The public plugin API: everything a built-in or custom plugin needs, from one module.
 * Built-in plugins import only from here, so a custom plugin can do everything they do.
 *
 * @example
 * import { definePlugin, GatewayError, z } from "../../worker/plugin-api";
 */
export { z } from "@hono/zod-openapi";
export { definePlugin, fromMiddleware, bagSlot, formatIssues, PluginConfigError } from "./gateway/plugin";
export type { GatewayContext, GatewayMiddleware, PluginDefinition, PluginFactory } from "./gateway/plugin";
export type { PluginInstance, PluginTraits, ForwardOptions, CompiledRoute, CompiledUpstream, RouteAccess } from "./gateway/types";
export { GatewayError, defineErrorCodes, errorCatalog } from "./errors";
export type { ErrorCode, GatewayErrorExtra } from "./errors";
export { waitUntil } from "./gateway/wait-until";
export { alreadyAuthenticated, isLastAuthenticator, credentialRequiredDetail, checkUserIps } from "./gateway/authn";
export type { GatewayEnv, GatewayVariables, Env, Services } from "./env";
export type { ResolvedIdentity } from "./services/identity";
export { ipAllowed, parseCidr, parseIp } from "./lib/cidr";
export { grants, isPermitted } from "./lib/permissions";
export { byteLimit } from "./gateway/forward";
/** Bag keys a plugin sets to enrich the request's audit event (limit state, refusal reason, refused subject). */
export { AUDIT_BAG } from "./audit/options";
