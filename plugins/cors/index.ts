import { definePlugin, GatewayError, z } from "../../worker/plugin-api";
import type { GatewayContext } from "../../worker/plugin-api";
import { HTTP_METHODS } from "../../worker/gateway/config";

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

const origin = z
  .string()
  .refine((o) => {
    if (o === "*") return true;
    try {
      const u = new URL(o);
      // An origin is scheme://host[:port] exactly: no path, query, credentials or trailing slash.
      return (u.protocol === "https:" || u.protocol === "http:") && u.origin === o;
    } catch {
      return false;
    }
  }, 'must be an exact origin such as "https://app.example.com" (scheme, host, optional port; no path or trailing slash)');

export const corsOptions = z
  .strictObject({
    origins: z.array(origin).min(1).describe('Origins allowed to call the route, exactly as browsers send them; "*" only without credentials'),
    credentials: z.boolean().default(false).describe("Allow cookies / Authorization from browsers (Access-Control-Allow-Credentials)"),
    methods: z.array(z.enum(HTTP_METHODS)).min(1).optional().describe("Methods a preflight may approve; default: the route's methods"),
    allowHeaders: z
      .array(z.string().regex(HEADER_NAME))
      .default(["authorization", "content-type", "x-api-key"])
      .describe("Request headers a preflight may approve (others are refused)"),
    exposeHeaders: z.array(z.string().regex(HEADER_NAME)).default(["x-request-id"]).describe("Response headers scripts may read"),
    maxAgeSeconds: z.number().int().min(0).max(86_400).default(600).describe("How long browsers may cache a preflight answer"),
    rejectUnlisted: z.boolean().default(true).describe("Refuse (403) any request whose Origin is not listed, instead of only withholding CORS headers"),
  })
  .superRefine((o, ctx) => {
    const star = o.origins.indexOf("*");
    if (star !== -1 && o.credentials) ctx.addIssue({ code: "custom", path: ["origins", star], message: '"*" cannot be combined with credentials: list the origins' });
    if (star !== -1 && o.origins.length > 1) ctx.addIssue({ code: "custom", path: ["origins", star], message: '"*" must be the only entry' });
  });
export type CorsOptions = z.input<typeof corsOptions>;

const denied = (detail: string) => new GatewayError("CORS_ORIGIN_DENIED", detail);

/**
 * Removes CORS headers the origin set itself. On a route that runs cors the allow-list decides:
 * an origin that echoes any Origin with `Access-Control-Allow-Credentials: true` (a common
 * framework default) would otherwise hand an unlisted site a readable response, or credentials
 * where the route allows none. One pass over the names; a delete only for what is there.
 */
function dropOriginCors(headers: Headers): void {
  let doomed: string[] | undefined;
  for (const name of headers.keys()) if (name.startsWith("access-control-")) (doomed ??= []).push(name);
  if (doomed) for (const name of doomed) headers.delete(name);
}

/**
 * CORS for browser-facing routes with a strict allow-list: exact origins (the request's
 * Origin is echoed back only when listed, with `Vary: Origin`), no wildcard with credentials,
 * preflights answered here (never forwarded) and refused when they ask for an unlisted
 * method or header. Put it first in the chain: preflights carry no credentials, so it must
 * answer them before an authenticator would refuse them (config load enforces this).
 *
 * @example plugins: [cors({ origins: ["https://app.example.com"], credentials: true }), keyAuth(), authorize()]
 */
export const cors = definePlugin({
  name: "cors",
  config: corsOptions,
  traits: { answersPreflight: true, leavesIdentityHeaders: true },
  create: (o) => {
    const anyOrigin = o.origins.includes("*");
    const origins = new Set(o.origins);
    const allowHeaders = new Set(o.allowHeaders.map((h) => h.toLowerCase()));
    const exposeHeaders = o.exposeHeaders.join(", ");
    const decorate = (c: GatewayContext, headers: Headers, requestOrigin: string) => {
      headers.set("access-control-allow-origin", anyOrigin ? "*" : requestOrigin);
      if (!anyOrigin) headers.append("vary", "Origin");
      if (o.credentials) headers.set("access-control-allow-credentials", "true");
      return headers;
    };
    return async function cors(c, next) {
      const requestOrigin = c.req.header("origin");
      if (requestOrigin === undefined) {
        // Not a cross-origin browser request, but its response may be cached (a navigation, an
        // <img>) and reused for a later fetch() of the same URL, which needs the CORS headers: say
        // the response depends on Origin, or, with "*", give the same answer every request gets.
        await next();
        if (!anyOrigin) c.res.headers.append("vary", "Origin");
        else {
          dropOriginCors(c.res.headers);
          decorate(c, c.res.headers, "*");
          if (exposeHeaders) c.res.headers.set("access-control-expose-headers", exposeHeaders);
        }
        return;
      }
      const listed = anyOrigin || origins.has(requestOrigin);
      const preflight = c.req.method === "OPTIONS" && c.req.header("access-control-request-method") !== undefined;
      if (preflight) {
        if (!listed) throw denied(`Origin ${requestOrigin} may not call this route.`);
        const methods = (o.methods ?? [...c.get("route").methods]).filter((m) => c.get("route").methods.has(m));
        const wanted = c.req.header("access-control-request-method")!.toUpperCase();
        if (!methods.includes(wanted)) throw denied(`Method ${wanted} is not allowed from browsers on this route.`);
        const asked = (c.req.header("access-control-request-headers") ?? "")
          .split(",")
          .map((h) => h.trim().toLowerCase())
          .filter(Boolean);
        const refused = asked.filter((h) => !allowHeaders.has(h));
        if (refused.length) throw denied(`Header(s) ${refused.join(", ")} are not allowed from browsers on this route.`);
        const headers = decorate(c, new Headers(), requestOrigin);
        headers.set("access-control-allow-methods", methods.join(", "));
        if (asked.length) headers.set("access-control-allow-headers", asked.join(", "));
        headers.set("access-control-max-age", String(o.maxAgeSeconds));
        headers.append("vary", "Access-Control-Request-Method, Access-Control-Request-Headers");
        return c.body(null, 204, Object.fromEntries(headers));
      }
      if (!listed) {
        if (o.rejectUnlisted) throw denied(`Origin ${requestOrigin} may not call this route.`);
        await next();
        dropOriginCors(c.res.headers);
        c.res.headers.append("vary", "Origin"); // a listed origin would get another answer
        return;
      }
      await next();
      dropOriginCors(c.res.headers);
      // Also on problem responses, so the page can read the error the gateway returned.
      decorate(c, c.res.headers, requestOrigin);
      if (exposeHeaders) c.res.headers.set("access-control-expose-headers", exposeHeaders);
    };
  },
});
