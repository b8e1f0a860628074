import { z } from "@hono/zod-openapi";
import { userStatuses } from "../db/schema";
import { parseCidr } from "../lib/cidr";
import { once } from "../lib/once";
import { PERMISSION_PATTERN } from "../lib/permissions";
import { REKEY_PAGE } from "../services/secrets";

// Names end up in identity headers sent to origins, so they are restricted to header-safe text.
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$/;
// Said in words wherever NAME is checked: zod's default message quotes the pattern's source.
const NAME_RULE = "1–64 chars: letters, digits, _ . @ : -";

export const idParam = (prefix: string, what: string) =>
  z.object({
    id: z
      .string()
      .regex(new RegExp(`^${prefix}_[0-9A-Za-z]{1,64}$`), `must be a ${what} id (${prefix}_…)`)
      .openapi({ param: { name: "id", in: "path" }, example: `${prefix}_0mj1x2k3aAbCdEfGhIjKl` }),
  });

export const pageOf = <T extends z.ZodType>(item: T, name: string) =>
  z.object({ data: z.array(item), nextCursor: z.string().nullable().describe("Pass as `cursor` for the next page; null on the last") }).openapi(name);

/**
 * The admin API's schemas (also the dashboard's form validation), built on the first admin or
 * dashboard request rather than at start-up: zod schemas cost their construction at module load,
 * and an isolate serving only proxy traffic never needs these (see worker/lib/once.ts).
 */
function buildAdminSchemas() {
  const permission = z.string().regex(PERMISSION_PATTERN, "permission strings use letters, digits, _ . : - / and * wildcards").openapi({ example: "orders:*" });
  const timestamp = z.iso.datetime({ offset: true }).openapi({ example: "2027-01-01T00:00:00Z" });
  const futureDate = z.iso
    .datetime({ offset: true })
    .transform((s) => new Date(s))
    .openapi({ type: "string", format: "date-time", example: "2027-01-01T00:00:00Z" });
  const cidr = z
    .string()
    .refine((s) => parseCidr(s) !== null, "must be an IPv4 or IPv6 address or CIDR")
    .openapi({ example: "10.0.0.0/8" });
  const metadata = z
    .preprocess(
      (m, ctx) => {
        // zod's record drops a "__proto__" key (copying it would set the prototype): refused here, before
        // parsing, rather than stored silently as something other than what was sent.
        if (m && typeof m === "object" && Object.hasOwn(m, "__proto__")) ctx.addIssue({ code: "custom", message: "the key __proto__ is not allowed", path: ["__proto__"] });
        return m;
      },
      // Bytes of UTF-8, not string length: "é" is one UTF-16 unit but two bytes, an emoji two units but four.
      z.record(z.string(), z.unknown()).refine((m) => new TextEncoder().encode(JSON.stringify(m)).byteLength <= 4096, "metadata must serialize to at most 4096 bytes"),
    )
    .describe("Free-form JSON object (≤ 4 KiB) for your own bookkeeping");

  const listQuery = z.object({
    limit: z.coerce.number().int().min(1).max(100).default(50).describe("Page size (1–100)"),
    cursor: z.string().max(200).optional().describe("`nextCursor` from the previous page"),
  });

  // ── roles ──────────────────────────────────────────────────────────────────────
  const roleSchema = z
    .object({
      id: z.string().openapi({ example: "rol_0mj1x2k3aAbCdEfGhIjKl" }),
      name: z.string(),
      description: z.string().nullable(),
      permissions: z.array(z.string()),
      createdAt: timestamp,
      updatedAt: timestamp,
    })
    .openapi("Role");

  const roleCreateSchema = z
    .strictObject({
      name: z.string().regex(NAME, NAME_RULE).describe("Unique role name").openapi({ example: "orders-reader" }),
      description: z.string().max(500).nullable().optional().describe("What the role is for"),
      permissions: z.array(permission).max(200).describe("Permission strings; `*` matches any run of characters"),
    })
    .openapi("RoleCreate");
  const rolePatchSchema = roleCreateSchema.partial().openapi("RolePatch");

  // ── users ──────────────────────────────────────────────────────────────────────
  const userSchema = z
    .object({
      id: z.string().openapi({ example: "usr_0mj1x2k3aAbCdEfGhIjKl" }),
      name: z.string(),
      description: z.string().nullable(),
      group: z.string().nullable(),
      status: z.enum(userStatuses),
      metadata: z.record(z.string(), z.unknown()),
      expiresAt: timestamp.nullable(),
      allowedIps: z.array(z.string()).nullable(),
      roles: z.array(z.string()),
      createdAt: timestamp,
      updatedAt: timestamp,
    })
    .openapi("ProxyUser");

  const userCreateSchema = z
    .strictObject({
      name: z.string().regex(NAME, NAME_RULE).describe("Unique name of the consumer").openapi({ example: "billing-service" }),
      description: z.string().max(500).nullable().optional().describe("Who or what this proxy user is"),
      group: z.string().regex(NAME, NAME_RULE).nullable().optional().describe("Group such as `internal` or `partner`").openapi({ example: "internal" }),
      status: z.enum(userStatuses).optional().describe("Defaults to `active`; `disabled` refuses all its keys"),
      roles: z.array(z.string().regex(NAME, NAME_RULE)).max(50).optional().describe("Role names to assign"),
      metadata: metadata.optional(),
      expiresAt: futureDate.nullable().optional().describe("After this instant every key of the user is refused. Must lie ahead when set (a PATCH may send the stored one back unchanged)"),
      allowedIps: z.array(cidr).min(1).max(100).nullable().optional().describe("Client IPs/CIDRs allowed to use the user's keys; null = any"),
    })
    .openapi("ProxyUserCreate");
  const userPatchSchema = userCreateSchema.partial().openapi("ProxyUserPatch");

  const userListQuery = listQuery.extend({
    group: z.string().max(64).optional().describe("Only users in this group"),
    status: z.enum(userStatuses).optional().describe("Only users with this status"),
    role: z.string().max(64).optional().describe("Only users holding this role (by name)"),
    name: z.string().max(64).optional().describe("Only the user with exactly this name"),
    search: z.string().max(64).optional().describe("Only users whose name contains this text (case-insensitive)"),
  });

  const userDeletedSchema = z
    .object({ id: z.string(), deleted: z.literal(true), revokedKeyIds: z.array(z.string()) })
    .openapi("ProxyUserDeleted");

  // ── keys ───────────────────────────────────────────────────────────────────────
  const keySchema = z
    .object({
      id: z.string().openapi({ example: "key_0mj1x2k3aAbCdEfGhIjKl" }),
      userId: z.string(),
      name: z.string().nullable(),
      start: z.string().describe("The first characters of the key, to tell keys apart").openapi({ example: "pcl_Ab3x" }),
      status: z.enum(["active", "revoked", "expired"]),
      permissions: z.array(z.string()).nullable().describe("Scope-down; null = all the user's permissions"),
      expiresAt: timestamp.nullable(),
      revokedAt: timestamp.nullable(),
      lastUsedAt: timestamp.nullable().describe("Precise to about a minute"),
      rotatedFrom: z.string().nullable().describe("The key this one replaced by rotation"),
      rotatedTo: z.string().nullable().describe("The key that replaced this one; a rotated key is not rotated again (409 KEY_ALREADY_ROTATED)"),
      createdAt: timestamp,
    })
    .openapi("ApiKey");

  const issuedKeySchema = keySchema
    .extend({ key: z.string().describe("The API key. Shown only in this response: store it now.").openapi({ example: "pcl_Ab3x…" }) })
    .openapi("IssuedApiKey");

  const rotatedKeySchema = issuedKeySchema.extend({ previous: keySchema }).openapi("RotatedApiKey");

  const keyCreateSchema = z
    .strictObject({
      name: z.string().max(100).nullable().optional().describe("Label, e.g. where the key is deployed"),
      permissions: z.array(permission).max(200).nullable().optional().describe("Narrow the key to these permissions (never widens the user's roles)"),
      expiresAt: futureDate.nullable().optional().describe("When the key stops working"),
    })
    .openapi("ApiKeyCreate");

  const keyRotateSchema = z
    .strictObject({
      gracePeriodSeconds: z
        .number()
        .int()
        .min(0)
        .max(30 * 24 * 3600)
        .default(0)
        .describe("How long the old key keeps working (0 = revoked at once; max 30 days)"),
    })
    .openapi("ApiKeyRotate");


  // ── origin secrets ─────────────────────────────────────────────────────────────
  const secretNameParam = z.object({
    name: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, "1–64 chars: a letter, then letters, digits, _ . -")
      .openapi({ param: { name: "name", in: "path" }, example: "ORDERS_API_TOKEN" }),
  });

  const secretBinding = {
    userId: z
      .string()
      .regex(/^usr_[0-9A-Za-z]{1,64}$/, "must be a proxy user id (usr_…)")
      .optional()
      .describe("Bind to this proxy user only (wins over group and global)"),
    group: z.string().regex(NAME, NAME_RULE).optional().describe("Bind to this group (wins over global)"),
  };

  const secretSchema = z
    .object({
      name: z.string(),
      scope: z.enum(["global", "user", "group"]),
      userId: z.string().nullable(),
      group: z.string().nullable(),
      version: z.number().int().describe("Starts at 1; every PUT adds 1"),
      createdAt: timestamp,
      updatedAt: timestamp,
    })
    .openapi("OriginSecret", { description: "An origin secret's metadata. The value is write-only: no endpoint returns it." });

  const secretPutSchema = z
    .strictObject({
      value: z
        .string()
        .min(1)
        .max(8192)
        // Sent in a header: CR, LF and NUL would break it, and the runtime logs a warning quoting any
        // value with a non-ASCII character whole, which would put the secret in the logs.
        .refine((v) => !/[^\t\x20-\x7e]/.test(v), "must be printable ASCII (it is sent in a header)")
        .describe("The secret. Stored encrypted (AES-256-GCM); never returned, logged or audited"),
      ...secretBinding,
    })
    .openapi("OriginSecretPut");

  const secretRekeySchema = z
    .object({
      total: z.number().int().describe("Secrets this page examined"),
      rekeyed: z.number().int(),
      alreadyCurrent: z.number().int(),
      undecryptable: z.array(secretSchema).describe("Neither key opens these"),
      nextCursor: z.string().nullable().describe("Pass as `cursor` to rekey the next page; null on the last"),
    })
    .openapi("OriginSecretRekey");
  const secretRekeyQuery = z.object({
    limit: z.coerce.number().int().min(1).max(REKEY_PAGE.max).default(REKEY_PAGE.default).describe(`Secrets per call (1–${REKEY_PAGE.max})`),
    cursor: listQuery.shape.cursor,
  });

  const secretBindingQuery = z.object(secretBinding);
  const secretListQuery = listQuery.extend({ name: z.string().max(64).optional().describe("Only secrets with this name") });

  return { listQuery, roleSchema, roleCreateSchema, rolePatchSchema, userSchema, userCreateSchema, userPatchSchema, userListQuery, userDeletedSchema, keySchema, issuedKeySchema, rotatedKeySchema, keyCreateSchema, keyRotateSchema, secretNameParam, secretSchema, secretPutSchema, secretRekeySchema, secretRekeyQuery, secretBindingQuery, secretListQuery };
}

export const adminSchemas = once(buildAdminSchemas);
