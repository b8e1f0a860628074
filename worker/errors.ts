import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "@hono/zod-openapi";
import { once } from "./lib/once";

/**
 * Every error code a client or admin can see, with its HTTP status and title. Codes are a
 * public contract: add new ones, never rename or reuse one.
 */
export const errorCatalog = {
  BAD_REQUEST: { status: 400, title: "Bad request" },
  VALIDATION_FAILED: { status: 400, title: "The request body or parameters are invalid" },
  PATH_INVALID: { status: 400, title: "The request path is not in canonical form" },
  KEY_INVALID: { status: 401, title: "Unauthorized" },
  TOKEN_INVALID: { status: 401, title: "A valid bearer token is required" },
  HEADER_INVALID: { status: 400, title: "A header value is not allowed" },
  ADMIN_UNAUTHORIZED: { status: 401, title: "Admin authentication required" },
  ADMIN_THROTTLED: { status: 429, title: "Too many wrong admin tokens" },
  FORBIDDEN: { status: 403, title: "Forbidden" },
  NOT_FOUND: { status: 404, title: "Not found" },
  USER_NOT_FOUND: { status: 404, title: "Proxy user not found" },
  ROLE_NOT_FOUND: { status: 404, title: "Role not found" },
  KEY_NOT_FOUND: { status: 404, title: "Key not found" },
  LIMIT_NOT_FOUND: { status: 404, title: "No limit has this name" },
  METHOD_NOT_ALLOWED: { status: 405, title: "Method not allowed" },
  CONFLICT: { status: 409, title: "Conflict" },
  KEY_ALREADY_ROTATED: { status: 409, title: "The key has already been rotated" },
  SECRET_NOT_FOUND: { status: 404, title: "Secret not found" },
  CORS_ORIGIN_DENIED: { status: 403, title: "This origin may not call the route" },
  PAYLOAD_TOO_LARGE: { status: 413, title: "Payload too large" },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: "Unsupported media type" },
  RATE_LIMITED: { status: 429, title: "Too many requests" },
  QUOTA_EXCEEDED: { status: 429, title: "Quota exceeded" },
  INTERNAL: { status: 500, title: "Internal error" },
  UPSTREAM_UNAVAILABLE: { status: 502, title: "The upstream could not be reached" },
  UPSTREAM_RESPONSE_TOO_LARGE: { status: 502, title: "The upstream's response is too large" },
  GATEWAY_MISCONFIGURED: { status: 500, title: "The gateway is misconfigured" },
  UPSTREAM_TIMEOUT: { status: 504, title: "The upstream did not answer in time" },
  LIMITER_UNAVAILABLE: { status: 503, title: "The limiter is unavailable" },
  IDENTITY_UNAVAILABLE: { status: 503, title: "Identity store unavailable" },
} as const satisfies Record<string, { status: ContentfulStatusCode; title: string }>;

export type ErrorCode = keyof typeof errorCatalog;
export const errorCodes = Object.keys(errorCatalog) as [ErrorCode, ...ErrorCode[]];

/** Codes added by custom plugins through `defineErrorCodes`, looked up after the built-in catalog. */
const customCatalog = new Map<string, { status: ContentfulStatusCode; title: string }>();
const CUSTOM_CODE = /^[A-Z][A-Z0-9_]{2,63}$/;

function catalogEntry(code: string): { status: ContentfulStatusCode; title: string } {
  const entry = (errorCatalog as Record<string, { status: ContentfulStatusCode; title: string }>)[code] ?? customCatalog.get(code);
  if (!entry) throw new Error(`unknown error code "${code}": add it to errorCatalog or defineErrorCodes`);
  return entry;
}

/**
 * Registers error codes of a custom plugin (stable strings, like the built-in ones) and returns
 * a typed constructor for them. A code that clashes with a built-in or another plugin's code
 * fails at load.
 *
 * @example
 * const errors = defineErrorCodes({ IDEMPOTENCY_KEY_REQUIRED: { status: 428, title: "An Idempotency-Key header is required" } });
 * throw errors.error("IDEMPOTENCY_KEY_REQUIRED", "POST to this route needs an Idempotency-Key.");
 */
export function defineErrorCodes<const T extends Record<string, { status: ContentfulStatusCode; title: string }>>(codes: T) {
  for (const [code, entry] of Object.entries(codes)) {
    if (!CUSTOM_CODE.test(code)) throw new Error(`error code "${code}" must be UPPER_SNAKE_CASE (3–64 chars)`);
    const existing = (errorCatalog as Record<string, unknown>)[code] ?? customCatalog.get(code);
    if (existing && existing !== entry) throw new Error(`error code "${code}" is already defined`);
    customCatalog.set(code, entry);
  }
  return {
    codes,
    /** A GatewayError carrying one of these codes; throw it from a plugin. */
    error: (code: keyof T & string, detail?: string, extra?: GatewayErrorExtra) =>
      // The built-in union types `code`; custom codes are checked against the registry above instead.
      new GatewayError(code as ErrorCode, detail, extra),
  };
}

export interface GatewayErrorExtra {
  headers?: Record<string, string>;
  errors?: Array<{ path: string; message: string }>;
}

/**
 * RFC 9457 problem details as Portcullis renders them, for the admin API's OpenAPI document (built
 * on first use: no request path needs the schema itself; see worker/lib/once.ts).
 */
export const problemSchema = once(() =>
  z
    .object({
      type: z.string().describe("URI naming the problem type"),
      title: z.string().describe("Short summary of the problem type"),
      status: z.number().int().describe("HTTP status code"),
      detail: z.string().describe("What went wrong in this occurrence"),
      code: z.enum(errorCodes).describe("Stable machine-readable error code"),
      requestId: z.string().describe("The X-Request-Id of the request, for support and logs"),
      errors: z
        .array(z.object({ path: z.string(), message: z.string() }))
        .optional()
        .describe("Field errors, for VALIDATION_FAILED"),
    })
    .openapi("Problem"),
);
export type Problem = z.infer<ReturnType<typeof problemSchema>>;

/**
 * The one error type of the gateway. Throw it from a plugin, a handler or a service and the
 * client gets problem+json with its code; nothing after the throw runs.
 *
 * @example throw new GatewayError("FORBIDDEN", "This key may not call orders:refund.");
 */
export class GatewayError extends Error {
  readonly status: ContentfulStatusCode;
  constructor(
    readonly code: ErrorCode,
    readonly detail: string = catalogEntry(code).title,
    readonly extra: GatewayErrorExtra = {},
  ) {
    super(`${code}: ${detail}`);
    this.name = "GatewayError";
    this.status = catalogEntry(code).status;
  }
}

const encoder = new TextEncoder();

export function problemResponse(c: Context, err: GatewayError): Response {
  const body: Problem = {
    type: `urn:portcullis:problem:${err.code.toLowerCase().replaceAll("_", "-")}`,
    title: catalogEntry(err.code).title,
    status: err.status,
    detail: err.detail,
    code: err.code,
    requestId: c.get("requestId") ?? "unknown",
    ...(err.extra.errors ? { errors: err.extra.errors } : {}),
  };
  const bytes = encoder.encode(JSON.stringify(body));
  // The length is known: declaring it lets the audit trail record the size without counting a stream.
  const headers = new Headers({ "content-type": "application/problem+json", ...err.extra.headers, "content-length": String(bytes.byteLength) });
  if (body.requestId !== "unknown") headers.set("x-request-id", body.requestId);
  return new Response(bytes, { status: err.status, headers });
}

const httpExceptionCodes: Partial<Record<number, ErrorCode>> = {
  400: "BAD_REQUEST",
  401: "ADMIN_UNAUTHORIZED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  405: "METHOD_NOT_ALLOWED",
  413: "PAYLOAD_TOO_LARGE",
  415: "UNSUPPORTED_MEDIA_TYPE",
  429: "RATE_LIMITED",
  504: "UPSTREAM_TIMEOUT",
};

const HTTP_EXCEPTION_HEADERS = ["www-authenticate", "retry-after", "allow"];

/**
 * The code a Hono HTTPException answers with, and is audited under. A 401 on a proxy route comes
 * from a Hono middleware in its chain (basicAuth, bearerAuth via fromMiddleware), not from the
 * admin API, which raises its own codes.
 */
export const httpExceptionCode = (status: number, onRoute: boolean): ErrorCode => (status === 401 && onRoute ? "KEY_INVALID" : (httpExceptionCodes[status] ?? "INTERNAL"));

/**
 * Three tiers: our error as is; Hono's HTTPException (from its own middleware) mapped by
 * status; anything else logged with its stack and answered as a generic 500, so internals
 * never reach a client.
 */
export const onError: ErrorHandler = (err, c) => {
  // A problem replaces whatever response an earlier step produced (an error thrown after the
  // origin answered). Left in place, Hono would copy that response's headers onto the problem —
  // the origin's Content-Length (no longer the body's), its cookies, its caching headers. Its
  // body is released too: nobody will read it.
  if (c.finalized) {
    const previous = c.res;
    c.res = undefined;
    previous.body?.cancel().catch(() => {});
  }
  if (err instanceof GatewayError) return problemResponse(c, err);
  if (err instanceof HTTPException) {
    const code = httpExceptionCode(err.status, c.get("route") !== undefined);
    // The middleware's own response may carry what the status needs to be acted on (the 401's
    // challenge, a 429's Retry-After, a 405's Allow); its body and framing are not kept.
    const headers: Record<string, string> = {};
    for (const name of HTTP_EXCEPTION_HEADERS) {
      const value = err.res?.headers.get(name);
      if (value) headers[name] = value;
    }
    return problemResponse(c, new GatewayError(code, err.message || errorCatalog[code].title, { headers }));
  }
  console.error(JSON.stringify({ level: "error", msg: "unhandled error", requestId: c.get("requestId"), error: String(err), stack: (err as Error)?.stack }));
  return problemResponse(c, new GatewayError("INTERNAL", "An unexpected error occurred."));
};

export const notFound: NotFoundHandler = (c) => problemResponse(c, new GatewayError("NOT_FOUND", "No route matches this path."));
