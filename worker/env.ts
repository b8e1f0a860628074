import { z } from "@hono/zod-openapi";
import type { Database } from "./db";
import type { KeyCache } from "./services/key-cache";
import type { CompiledGateway, CompiledRoute, CompiledUpstream, ForwardOptions } from "./gateway/types";
import type { ResolvedIdentity } from "./services/identity";
import type { BodyMeter } from "./audit/meter";
import { GatewayError } from "./errors";

/**
 * The Worker's bindings, in one place. Vars named by `gateway.config.ts` (upstream URLs and
 * credentials) are looked up by name at run time, so they are typed as an open record too.
 */
export interface Env {
  DB: D1Database;
  /** Bearer token for /admin/v1. A Worker secret in production, `.dev.vars` locally. */
  ADMIN_TOKEN: string;
  /**
   * The token ADMIN_TOKEN replaced, while a rotation is under way: still accepted (admin API and
   * dashboard sign-in), its uses logged and audited as `admin-token-previous`. Remove it once
   * nothing uses it.
   */
  ADMIN_TOKEN_PREVIOUS?: string;
  /** How long a resolved key stays fresh in an isolate, seconds (default 5, max 60). */
  KEY_CACHE_TTL_SECONDS?: string;
  /** How long an unknown key is remembered as unknown, seconds (default 2). */
  KEY_NEGATIVE_CACHE_TTL_SECONDS?: string;
  /** Queue for request audit events (producer side). Unbound = events go to D1 directly, in batches. */
  AUDIT_QUEUE?: Queue;
  /** Days request events are kept (the scheduled handler deletes older day-chains). Default 30. */
  AUDIT_RETENTION_DAYS?: string;
  /** Days minute-granularity usage rollups are kept (hour/day rollups are kept). Default 7. */
  USAGE_MINUTE_RETENTION_DAYS?: string;
  /** When set, the scheduled handler revokes active keys unused for this many days. */
  AUTO_REVOKE_UNUSED_KEYS_DAYS?: string;
  /**
   * Most D1 queries one scheduled run makes (default 900: Workers Paid allows 1,000 per
   * invocation; set 45 on the Free plan, which allows 50). The run stops before it; the next goes on.
   */
  CRON_D1_QUERY_BUDGET?: string;
  /**
   * Key encrypting the origin-secret store (AES-256-GCM): 32 random bytes, base64
   * (`openssl rand -base64 32 | wrangler secret put SECRETS_KEY`). Only needed once secrets are used.
   */
  SECRETS_KEY?: string;
  /**
   * The key SECRETS_KEY replaced, while a key rotation is under way: secrets it encrypted still
   * decrypt, and `POST /admin/v1/secrets/rekey` re-encrypts them under SECRETS_KEY. Remove it
   * once the rekey reports none left under it.
   */
  SECRETS_KEY_PREVIOUS?: string;
  /** How long a decrypted origin secret stays cached in an isolate, seconds (default 10, max 300). */
  SECRET_CACHE_TTL_SECONDS?: string;
  /** Failed dashboard sign-ins allowed per client address per window before 429 (default 5). */
  ADMIN_SIGNIN_MAX_FAILURES?: string;
  /** The window of that count, seconds (default 900 = 15 minutes). */
  ADMIN_SIGNIN_WINDOW_SECONDS?: string;
  /** Durable Object namespace of LimiterDurableObject: the default rate-limit / quota backend. */
  LIMITER?: DurableObjectNamespace;
  /** When both are set, limits use the Upstash backend instead (see README "Rate limits and quotas"). */
  UPSTASH_REDIS_REST_URL?: string;
  UPSTASH_REDIS_REST_TOKEN?: string;
  [name: string]: unknown;
}

/** An optional AES-256 key as Worker secret text: 32 bytes, base64. */
const aesKeyText = (name: string) =>
  z
    .string()
    .refine((s) => /^[A-Za-z0-9+/]{43}=$/.test(s.trim()), `${name} must be 32 bytes, base64 (openssl rand -base64 32)`)
    .optional();

const envSchema = z.object({
  DB: z.custom<D1Database>((v) => typeof v === "object" && v !== null && "prepare" in v, "DB must be a D1 binding"),
  ADMIN_TOKEN: z.string().min(16, "ADMIN_TOKEN must be at least 16 characters"),
  ADMIN_TOKEN_PREVIOUS: z.string().min(16, "ADMIN_TOKEN_PREVIOUS must be at least 16 characters").optional(),
  KEY_CACHE_TTL_SECONDS: z.coerce.number().min(0).max(60).default(5),
  KEY_NEGATIVE_CACHE_TTL_SECONDS: z.coerce.number().min(0).max(60).default(2),
  AUDIT_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  USAGE_MINUTE_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(7),
  AUTO_REVOKE_UNUSED_KEYS_DAYS: z.coerce.number().int().min(1).max(3650).optional(),
  CRON_D1_QUERY_BUDGET: z.coerce.number().int().min(10).max(100_000).default(900),
  SECRETS_KEY: aesKeyText("SECRETS_KEY"),
  SECRETS_KEY_PREVIOUS: aesKeyText("SECRETS_KEY_PREVIOUS"),
  SECRET_CACHE_TTL_SECONDS: z.coerce.number().min(0).max(300).default(10),
  ADMIN_SIGNIN_MAX_FAILURES: z.coerce.number().int().min(1).max(1000).default(5),
  ADMIN_SIGNIN_WINDOW_SECONDS: z.coerce.number().int().min(10).max(86_400).default(900),
});
export type ValidatedEnv = z.output<typeof envSchema>;

// Bindings are the same object for the life of an isolate, so validate each one once.
const validated = new WeakMap<object, ValidatedEnv>();

/** Validates the bindings once per isolate; a misconfigured deploy fails loudly, not subtly. */
export function validateEnv(env: Env): ValidatedEnv {
  let v = validated.get(env);
  if (!v) {
    const parsed = envSchema.safeParse(env);
    if (!parsed.success) {
      const fields = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
      console.error(JSON.stringify({ level: "error", msg: "invalid worker bindings", fields }));
      throw new GatewayError("GATEWAY_MISCONFIGURED", "The gateway's bindings are invalid; see the worker log.");
    }
    v = parsed.data;
    validated.set(env, v);
  }
  return v;
}

/** Services built once per request by the init middleware; handlers and plugins use these. */
export interface Services {
  db: Database;
  keyCache: KeyCache;
  env: ValidatedEnv;
}

/** Typed Hono variables shared by the admin API, the gateway and every plugin. */
export interface GatewayVariables {
  requestId: string;
  services: Services;
  /** The compiled gateway this app serves (the admin API reads its limit definitions). */
  gateway: CompiledGateway;
  /** Client address from `CF-Connecting-IP` (never `X-Forwarded-For`, which clients can forge). */
  clientIp: string | undefined;
  /** Set by the admin API's auth: which admin token the call used (its audit rows' actor). */
  adminActor: "admin-token" | "admin-token-previous" | undefined;
  route: CompiledRoute;
  upstream: CompiledUpstream;
  /** Headers the forwarded request will carry; plugins edit them, the forwarder adds identity last. */
  upstreamHeaders: Headers;
  /** Set by an auth plugin once the caller is known. */
  identity: ResolvedIdentity | undefined;
  /** Per-request bag for plugin-to-plugin data; namespace keys by plugin name (see `bagSlot`). */
  bag: Map<string, unknown>;
  /** Set by the forwarder once the origin answered: its status and how long it took. */
  origin: { status: number; latencyMs: number } | undefined;
  /** Set by the audit plugin (or its pre-chain fallback) once this request's event is queued. */
  auditRecorded: boolean | undefined;
  /** Set by the audit plugin when the request body has no Content-Length: counts what is read of it. */
  auditBodyIn: BodyMeter | undefined;
  /** How the forwarder calls the origin: timeout, body replacement, response cap, injected secrets. */
  forward: ForwardOptions;
}

export type GatewayEnv = { Bindings: Env; Variables: GatewayVariables };
