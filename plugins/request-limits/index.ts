import { definePlugin, GatewayError, z } from "../../worker/plugin-api";
import { HTTP_METHODS } from "../../worker/gateway/config";

/** Headers some frameworks read to replace the request's method. The gateway authorized the real one. */
export const METHOD_OVERRIDE_HEADERS = ["x-http-method-override", "x-http-method", "x-method-override"];

const mediaType = z
  .string()
  .regex(/^([a-z0-9!#$&^_.+-]+)\/([a-z0-9!#$&^_.+-]+|\*)$/i, "must be a media type such as application/json or text/*")
  .transform((t) => t.toLowerCase());

export const requestLimitsOptions = z.strictObject({
  maxBodyBytes: z
    .number()
    .int()
    .nonnegative()
    .optional()
    .describe("Largest request body accepted (413 PAYLOAD_TOO_LARGE). Checked on Content-Length and by counting the bytes; default: no limit"),
  methods: z
    .array(z.enum(HTTP_METHODS))
    .min(1)
    .optional()
    .describe("Methods allowed here (405 METHOD_NOT_ALLOWED with Allow); narrows the route's `methods`; default: the route's"),
  contentTypes: z
    .array(mediaType)
    .min(1)
    .optional()
    .describe("Media types a request body may have, `type/*` allowed (415 UNSUPPORTED_MEDIA_TYPE); default: any"),
  timeoutMs: z.number().int().positive().max(300_000).optional().describe("Longest wait for the origin's response headers on this route (504 UPSTREAM_TIMEOUT); lowers the upstream's `timeoutMs`, never raises it"),
  idleTimeoutMs: z.number().int().positive().max(300_000).optional().describe("Longest wait for each next chunk of the origin's body on this route; lowers the upstream's `idleTimeoutMs` (or sets one)"),
  maxResponseBytes: z
    .number()
    .int()
    .positive()
    .optional()
    .describe("Largest origin response passed on: refused by Content-Length (502 UPSTREAM_RESPONSE_TOO_LARGE) or cut off while streaming; default: no limit"),
  stripMethodOverride: z.boolean().default(true).describe("Remove X-HTTP-Method-Override and its variants before forwarding"),
});
export type RequestLimitsOptions = z.input<typeof requestLimitsOptions>;

const tooLarge = (max: number) => new GatewayError("PAYLOAD_TOO_LARGE", `The request body is larger than ${max} bytes.`);

/** Reads a body up to `max` bytes; throws 413 as soon as it grows past that (the rest is never read). */
async function readBounded(body: ReadableStream<Uint8Array>, max: number): Promise<ArrayBuffer> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel();
      throw tooLarge(max);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out.buffer;
}

/**
 * Fail-safes for a route: request body size, methods, content types, origin timeout and
 * response size, plus method-override headers stripped. Everything request-side is decided
 * before the origin call, so a refused request never reaches the origin: with `maxBodyBytes`
 * the body is read (up to the limit) before forwarding, which is what makes a chunked upload
 * without Content-Length refusable with a clean 413.
 *
 * @example requestLimits({ maxBodyBytes: 1_048_576, methods: ["GET", "POST"], contentTypes: ["application/json"], timeoutMs: 5000 })
 */
export const requestLimits = definePlugin({
  name: "request-limits",
  traits: { leavesIdentityHeaders: true },
  config: requestLimitsOptions,
  create: ({ maxBodyBytes, methods, contentTypes, timeoutMs, idleTimeoutMs, maxResponseBytes, stripMethodOverride }) => {
    const allowed = methods ? new Set<string>(methods.includes("GET") ? [...methods, "HEAD"] : methods) : undefined;
    const matchesType = (type: string) => contentTypes!.some((t) => t === type || (t.endsWith("/*") && type.startsWith(t.slice(0, -1))));
    return async function requestLimits(c, next) {
      const method = c.req.method;
      if (allowed && !allowed.has(method)) {
        const allow = [...c.get("route").methods].filter((m) => allowed.has(m));
        throw new GatewayError("METHOD_NOT_ALLOWED", `${method} is not allowed on this route.`, { headers: { allow: allow.join(", ") } });
      }
      if (stripMethodOverride) for (const h of METHOD_OVERRIDE_HEADERS) c.get("upstreamHeaders").delete(h);
      const body = c.req.raw.body;
      const hasBody = body !== null && method !== "GET" && method !== "HEAD";
      if (contentTypes && hasBody) {
        // The type that will be sent, not the client's: a client's `Connection: content-type`
        // makes the sanitizer drop the header, and the origin would get the body untyped.
        const type = (c.get("upstreamHeaders").get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
        if (!type || !matchesType(type)) {
          throw new GatewayError("UNSUPPORTED_MEDIA_TYPE", `Content-Type "${type || "(none)"}" is not accepted here; use ${contentTypes.join(", ")}.`, {
            headers: { "accept-post": contentTypes.join(", ") },
          });
        }
      }
      if (maxBodyBytes !== undefined && hasBody) {
        const declared = c.req.header("content-length");
        if (declared !== undefined && !(/^\d+$/.test(declared) && Number(declared) <= maxBodyBytes)) throw tooLarge(maxBodyBytes);
        // Content-Length can lie or be absent (chunked): count what actually arrives.
        const buffered = await readBounded(body, maxBodyBytes);
        c.get("forward").body = buffered;
        // The stream is spent: a later plugin reading the body through Hono (c.req.json(), a
        // validator) gets these bytes instead of a TypeError.
        // (Hono types the cache as values; at run time it holds promises, and chains `.then` on them.)
        c.req.bodyCache.arrayBuffer = Promise.resolve(buffered) as unknown as ArrayBuffer;
      }
      if (timeoutMs !== undefined) c.get("forward").timeoutMs = Math.min(c.get("forward").timeoutMs, timeoutMs);
      if (idleTimeoutMs !== undefined) c.get("forward").idleTimeoutMs = Math.min(c.get("forward").idleTimeoutMs ?? Infinity, idleTimeoutMs);
      if (maxResponseBytes !== undefined) c.get("forward").maxResponseBytes = Math.min(c.get("forward").maxResponseBytes ?? Infinity, maxResponseBytes);
      await next();
    };
  },
});
