import { definePlugin, GatewayError, z } from "../../worker/plugin-api";
import type { GatewayContext } from "../../worker/plugin-api";
import { cachedSecret, resolveSecret, SECRET_NAME, UNSAFE_HEADER_CHARS } from "../../worker/services/secrets";

// RFC 9110 token: what a header name may be.
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Headers the gateway owns: framing, routing and its own identity headers. Plugins never write them. */
const RESERVED = new Set(["host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "proxy-connection", "x-request-id"]);
const VARIABLES = ["proxyUser.id", "proxyUser.name", "proxyUser.group", "requestId", "route.name", "upstream.name"] as const;
type Variable = (typeof VARIABLES)[number];

/** A template compiled at load: literal text, context variables and secret references. */
type Part = { text: string } | { variable: Variable } | { secret: string };

/** Parses `"Bearer {secret:TOKEN} for {proxyUser.id}"`; returns the parts or an error message. */
export function compileTemplate(template: string, allowSecrets: boolean): Part[] | string {
  if (UNSAFE_HEADER_CHARS.test(template)) return "must not contain CR, LF or NUL";
  const parts: Part[] = [];
  let rest = template;
  while (rest.length > 0) {
    const open = rest.indexOf("{");
    const close = rest.indexOf("}");
    if (open === -1) {
      if (close !== -1) return "has a '}' without '{'";
      parts.push({ text: rest });
      break;
    }
    if (close !== -1 && close < open) return "has a '}' without '{'";
    if (open > 0) parts.push({ text: rest.slice(0, open) });
    const end = rest.indexOf("}", open);
    if (end === -1) return "has a '{' without '}'";
    const token = rest.slice(open + 1, end);
    if (token.startsWith("secret:")) {
      const name = token.slice("secret:".length);
      if (!SECRET_NAME.test(name)) return `{${token}}: not a valid secret name`;
      if (!allowSecrets) return `{${token}}: secrets may only be used in request headers (a response header would hand it to the client)`;
      parts.push({ secret: name });
    } else if ((VARIABLES as readonly string[]).includes(token)) {
      parts.push({ variable: token as Variable });
    } else {
      return `unknown placeholder {${token}} (use ${VARIABLES.map((v) => `{${v}}`).join(", ")} or {secret:NAME})`;
    }
    rest = rest.slice(end + 1);
  }
  return parts;
}

/** Why `name` may not be edited, or null when it may. */
function headerNameProblem(name: string, what: string): string | null {
  if (!HEADER_NAME.test(name)) return "must be a valid header name";
  // Underscores too: CGI-style origins read x_portcullis_user_id as x-portcullis-user-id.
  const h = name.toLowerCase().replace(/_/g, "-");
  if (RESERVED.has(h) || h.startsWith("x-portcullis-")) return `the gateway owns this header; it cannot be ${what}`;
  return null;
}

const headerName = (what: string) =>
  z
    .string()
    .superRefine((h, ctx) => {
      const problem = headerNameProblem(h, what);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    })
    .transform((h) => h.toLowerCase());

const template = (allowSecrets: boolean) =>
  z
    .string()
    .max(4096)
    .superRefine((t, ctx) => {
      const compiled = compileTemplate(t, allowSecrets);
      if (typeof compiled === "string") ctx.addIssue({ code: "custom", message: compiled });
    })
    .transform((t) => compileTemplate(t, allowSecrets) as Part[]);

// Record keys are header names; they are checked here (not in the key schema) so an error
// names the header (`request.set.x-foo: …`) instead of zod's generic "Invalid key in record".
const lowerKeys = <T>(r: Record<string, T>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k.toLowerCase(), v]));
const operations = (allowSecrets: boolean) =>
  z
    .strictObject({
      remove: z.array(headerName("removed")).default([]).describe("Headers to delete"),
      rename: z.record(z.string(), headerName("a rename target")).default({}).describe("`{ from: to }`: moves a header's value to a new name"),
      set: z.record(z.string(), template(allowSecrets)).default({}).describe("`{ name: template }`: replaces the header"),
      add: z.record(z.string(), template(allowSecrets)).default({}).describe("`{ name: template }`: appends a value (keeps existing ones)"),
    })
    .superRefine((o, ctx) => {
      for (const [op, what] of [["rename", "renamed"], ["set", "set"], ["add", "added"]] as const) {
        for (const name of Object.keys(o[op])) {
          const problem = headerNameProblem(name, what);
          if (problem) ctx.addIssue({ code: "custom", path: [op, name], message: problem });
        }
      }
    })
    .transform((o) => ({ remove: o.remove, rename: lowerKeys(o.rename), set: lowerKeys(o.set), add: lowerKeys(o.add) }));

export const headersOptions = z.strictObject({
  request: operations(true)
    .default({ remove: [], rename: {}, set: {}, add: {} })
    .describe("Edits of the headers sent to the origin (templates may use {secret:NAME})"),
  response: operations(false)
    .default({ remove: [], rename: {}, set: {}, add: {} })
    .describe("Edits of the headers returned to the client (no secrets)"),
});
export type HeadersOptions = z.input<typeof headersOptions>;
type Operations = z.output<typeof headersOptions>["request"];

/** Operations compiled once at load into arrays, so a request walks no objects and builds no entries. */
interface CompiledOps {
  remove: string[];
  rename: [from: string, to: string][];
  set: [header: string, parts: Part[]][];
  add: [header: string, parts: Part[]][];
  /** Every `{secret:NAME}` the templates use, resolved once per request before rendering. */
  secrets: string[];
  empty: boolean;
}

function compileOps(ops: Operations): CompiledOps {
  const set = Object.entries(ops.set);
  const add = Object.entries(ops.add);
  const secrets = [...new Set([...set, ...add].flatMap(([, parts]) => parts.flatMap((p) => ("secret" in p ? [p.secret] : []))))];
  const rename = Object.entries(ops.rename);
  return { remove: ops.remove, rename, set, add, secrets, empty: ops.remove.length + rename.length + set.length + add.length === 0 };
}

function variableValue(c: GatewayContext, v: Variable): string | undefined {
  switch (v) {
    case "proxyUser.id":
      return c.get("identity")?.user.id;
    case "proxyUser.name":
      return c.get("identity")?.user.name;
    case "proxyUser.group":
      return c.get("identity")?.user.group ?? undefined;
    case "requestId":
      return c.get("requestId");
    case "route.name":
      return c.get("route").name;
    case "upstream.name":
      return c.get("upstream").name;
  }
}

/** Resolves the secrets the templates name (cached per isolate by the store); a missing one refuses the request. */
async function resolveSecrets(c: GatewayContext, names: string[], injected: string[]): Promise<Map<string, string>> {
  const id = c.get("identity");
  const caller = { userId: id?.user.id, group: id?.user.group };
  const out = new Map<string, string>();
  for (const name of names) {
    // Warm cache: no await (and no microtask) per secret.
    let secret = cachedSecret(name, caller);
    if (secret === undefined) {
      const { db, env } = c.get("services");
      secret = await resolveSecret(db, env, name, caller);
    }
    if (secret === null) {
      console.error(JSON.stringify({ level: "error", msg: "origin secret missing", requestId: c.get("requestId"), route: c.get("route").name, secret: name }));
      // Forwarding without the credential would send the origin an unauthenticated request.
      throw new GatewayError("GATEWAY_MISCONFIGURED", `The origin secret this route needs (${name}) is not configured.`);
    }
    injected.push(secret);
    out.set(name, secret);
  }
  return out;
}

function render(c: GatewayContext, header: string, parts: Part[], secrets: Map<string, string> | undefined): string | null {
  let out = "";
  for (const part of parts) {
    if ("text" in part) out += part.text;
    else if ("variable" in part) {
      const v = variableValue(c, part.variable);
      // An absent value (no identity yet, a user without a group) omits the header rather than send half of it.
      if (v === undefined) return null;
      out += v;
    } else out += secrets!.get(part.secret)!;
  }
  if (UNSAFE_HEADER_CHARS.test(out)) {
    console.error(JSON.stringify({ level: "warn", msg: "header value refused", requestId: c.get("requestId"), route: c.get("route").name, header }));
    throw new GatewayError("HEADER_INVALID", `The value for header "${header}" contains a forbidden character (CR, LF or NUL).`);
  }
  return out;
}

function apply(c: GatewayContext, headers: Headers, ops: CompiledOps, secrets: Map<string, string> | undefined): void {
  // Render everything before touching the headers: a refused value leaves nothing half-applied.
  const setValues = ops.set.map(([h, t]) => render(c, h, t, secrets));
  const addValues = ops.add.map(([h, t]) => render(c, h, t, secrets));
  for (const h of ops.remove) headers.delete(h);
  for (const [from, to] of ops.rename) {
    const v = headers.get(from);
    headers.delete(from);
    if (v !== null) headers.set(to, v);
  }
  ops.set.forEach(([h], i) => {
    const v = setValues[i];
    if (v === null || v === undefined) headers.delete(h);
    else headers.set(h, v);
  });
  ops.add.forEach(([h], i) => {
    const v = addValues[i];
    if (v !== null && v !== undefined) headers.append(h, v);
  });
}

/**
 * Edits request headers (before the origin call) and response headers (on the way back):
 * `remove`, then `rename`, then `set`, then `add`. Values are templates over the context —
 * `{proxyUser.id}`, `{proxyUser.name}`, `{proxyUser.group}`, `{requestId}`, `{route.name}`,
 * `{upstream.name}` — and, in request headers only, `{secret:NAME}` from the encrypted
 * origin-secret store (bound per user, per group or global). Templates are compiled at load;
 * CR/LF/NUL are refused there, and again after rendering (400 HEADER_INVALID, nothing
 * forwarded). Any response header that carries an injected secret is dropped.
 *
 * @example
 * headers({
 *   request: { set: { "x-api-token": "{secret:ORDERS_TOKEN}", "x-tenant": "{proxyUser.group}" }, remove: ["cookie"] },
 *   response: { remove: ["server", "x-powered-by"], rename: { "x-upstream-trace": "x-trace" } },
 * })
 */
export const headers = definePlugin({
  name: "headers",
  traits: { leavesIdentityHeaders: true },
  config: headersOptions,
  create: (options) => {
    const request = compileOps(options.request);
    const response = compileOps(options.response);
    return async function headers(c, next) {
      if (!request.empty) {
        const secrets = request.secrets.length > 0 ? await resolveSecrets(c, request.secrets, c.get("forward").injectedSecrets) : undefined;
        apply(c, c.get("upstreamHeaders"), request, secrets);
      }
      await next();
      if (response.empty) return;
      // The response may be the origin's or a problem from a later plugin; both get the edits.
      const res = c.res;
      try {
        apply(c, res.headers, response, undefined);
      } catch (err) {
        if (err instanceof TypeError) {
          // Immutable headers (a Response this chain did not build): copy once, then edit.
          const copy = new Response(res.body, res);
          apply(c, copy.headers, response, undefined);
          c.res = undefined;
          c.res = copy;
        } else throw err;
      }
    };
  },
});
