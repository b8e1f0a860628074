/**
 * An example custom plugin, written only against the public plugin API (worker/plugin-api.ts),
 * to copy when writing your own. It shows every part a plugin can have: typed options with
 * defaults, a stable error code of its own, work before the origin call, work on the
 * response, data left in the per-request bag, and work after the response (waitUntil).
 *
 * What it does: callers in the chosen groups must send an `Idempotency-Key` header on the
 * chosen methods (POST by default), so a retried payment or order is never applied twice by
 * an origin that de-duplicates on that key.
 */
import { bagSlot, defineErrorCodes, definePlugin, waitUntil, z } from "../../worker/plugin-api";

// Codes are a public contract: register them once, at module load; a clash fails at load.
export const idempotencyErrors = defineErrorCodes({
  IDEMPOTENCY_KEY_REQUIRED: { status: 428, title: "An Idempotency-Key header is required" },
  IDEMPOTENCY_KEY_INVALID: { status: 400, title: "The Idempotency-Key header is not valid" },
});

/** Later plugins (e.g. an audit plugin) can read the key this request carried. */
export const idempotencyKeySlot = bagSlot<string>("require-idempotency-key.key");

export const requireIdempotencyKeyOptions = z.strictObject({
  groups: z
    .array(z.string().min(1))
    .min(1)
    .optional()
    .describe("Proxy-user groups the rule applies to; default: every caller"),
  methods: z
    .array(z.enum(["POST", "PUT", "PATCH", "DELETE"]))
    .min(1)
    .default(["POST"])
    .describe("Methods that need the header"),
  header: z
    .string()
    .regex(/^[A-Za-z0-9-]+$/)
    .default("Idempotency-Key")
    .describe("Header carrying the key"),
  maxLength: z.number().int().min(8).max(255).default(255).describe("Longest key accepted"),
  logAccepted: z.boolean().default(false).describe("After the response, log the key and the origin's status (for tracing retries)"),
});
export type RequireIdempotencyKeyOptions = z.input<typeof requireIdempotencyKeyOptions>;

/**
 * Requires an Idempotency-Key on unsafe methods for chosen groups of proxy users. Runs after
 * an authenticator (it reads the caller's group); callers outside the groups pass untouched.
 *
 * @example
 * routes: [{ name: "payments", path: "/payments/*", methods: ["GET", "POST"], upstream: "payments", permission: "payments:write",
 *            plugins: [requireIdempotencyKey({ groups: ["partner"] })] }]
 */
export const requireIdempotencyKey = definePlugin({
  name: "require-idempotency-key",
  // With groups it decides by the caller's group: config load then refuses a chain where it runs
  // before every authenticator (it would see no group, and never apply).
  traits: ({ groups }) => ({ leavesIdentityHeaders: true, needsIdentity: groups !== undefined }),
  config: requireIdempotencyKeyOptions,
  create: ({ groups, methods, header, maxLength, logAccepted }) => {
    // Compiled once per config load, not per request.
    const methodSet = new Set<string>(methods);
    const keyPattern = new RegExp(`^[\\x21-\\x7e]{1,${maxLength}}$`);
    return async function requireIdempotencyKey(c, next) {
      const group = c.get("identity")?.user.group ?? null;
      const applies = methodSet.has(c.req.method) && (!groups || (group !== null && groups.includes(group)));
      if (!applies) return next();

      // 1. Before the origin call: reject by throwing; nothing behind this runs.
      const key = c.req.header(header);
      if (key === undefined) throw idempotencyErrors.error("IDEMPOTENCY_KEY_REQUIRED", `${c.req.method} on this route needs an ${header} header.`);
      if (!keyPattern.test(key)) throw idempotencyErrors.error("IDEMPOTENCY_KEY_INVALID", `${header} must be 1–${maxLength} visible ASCII characters.`);
      idempotencyKeySlot.set(c, key);
      c.get("upstreamHeaders").set(header, key);

      await next();

      // 2. On the response: tell the client which key the answer belongs to.
      c.res.headers.set(header, key);

      // 3. After the response: never delays the client.
      if (logAccepted) {
        const entry = { level: "info", msg: "idempotent request", requestId: c.get("requestId"), route: c.get("route").name, key, status: c.res.status };
        waitUntil(c, Promise.resolve().then(() => console.log(JSON.stringify(entry))));
      }
    };
  },
});
