// @ts-check
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { all, ok } from "./client.js";
import { usageError } from "./errors.js";
import { color, printJson } from "./output.js";

/** @typedef {import("./client.js").AdminClient} AdminClient */
/** @typedef {import("./client.js").Schemas} Schemas */

/**
 * The file format (YAML or JSON). Only the fields a file lists are managed: leave one out and
 * `apply` leaves it as it is on the gateway. Keys are listed by label only — a missing one is
 * issued and printed once; the file never holds (and apply never writes) a key. `limits` is the
 * role's or user's whole set of limit overrides (`{ <limit name>: <number> }`; `{}` removes them
 * all); leave it out and the overrides are left alone.
 */
const ROLE_FIELDS = new Set(["name", "description", "permissions", "limits"]);
const USER_FIELDS = new Set(["name", "description", "group", "status", "roles", "metadata", "expiresAt", "allowedIps", "keys", "limits"]);
const LIMIT_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const MAX_LIMIT = 1_000_000_000;
const KEY_FIELDS = new Set(["name", "permissions", "expiresAt"]);
/** The gateway's PERMISSION_PATTERN (worker/lib/permissions.ts), so a bad key spec fails before anything is sent. */
const PERMISSION = /^[A-Za-z0-9_.:\-/*]{1,128}$/;
/** An ISO date-time with an offset, as the admin API takes it (`2027-01-01T00:00:00Z`). */
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * @typedef {Record<string, number>} LimitsSpec limit name → override
 * @typedef {{ name: string, description?: string | null, permissions: string[], limits?: LimitsSpec }} RoleSpec
 * @typedef {{ name: string, permissions?: string[] | null, expiresAt?: string | null }} KeySpec
 * @typedef {{ name: string, description?: string | null, group?: string | null, status?: "active" | "disabled", roles?: string[], metadata?: Record<string, unknown>, expiresAt?: string | null, allowedIps?: string[] | null, keys?: KeySpec[], limits?: LimitsSpec }} UserSpec
 * @typedef {{ user: string, name: string, id: string, key: string }} IssuedKey
 * @typedef {{ kind: "role" | "user" | "key", op: "create" | "update" | "delete", name: string, changes: Array<[string, unknown, unknown]>, run: () => Promise<unknown> }} Change
 */

/** @param {unknown} v @param {string} where */
function objectAt(v, where) {
  if (!v || typeof v !== "object" || Array.isArray(v)) throw usageError(`${where} must be a map.`);
  return /** @type {Record<string, unknown>} */ (v);
}

/** @param {Record<string, unknown>} obj @param {Set<string>} allowed @param {string} where */
function checkFields(obj, allowed, where) {
  for (const k of Object.keys(obj)) {
    if (/^(key|secret|token|hash)$/i.test(k)) throw usageError(`${where}: "${k}" is not allowed — an apply file never holds keys or secrets.`);
    if (!allowed.has(k)) throw usageError(`${where}: unknown field "${k}" (allowed: ${[...allowed].join(", ")}).`);
  }
  if (typeof obj.name !== "string" || !obj.name) throw usageError(`${where}: "name" is required.`);
}

/** `limits` must be a map of limit names to whole numbers. @param {Record<string, unknown>} obj @param {string} where */
function checkLimits(obj, where) {
  if (!("limits" in obj)) return;
  const limits = objectAt(obj.limits, `${where}.limits`);
  for (const [name, v] of Object.entries(limits)) {
    if (!LIMIT_NAME.test(name)) throw usageError(`${where}.limits: "${name}" is not a limit name (lower-case letters, digits, _ and -).`);
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > MAX_LIMIT) throw usageError(`${where}.limits.${name}: must be a whole number from 0 to ${MAX_LIMIT}.`);
  }
}

/**
 * An `expiresAt` the gateway would take: null, or an ISO date-time with offset that has not passed.
 * @param {unknown} v @param {string} where
 */
function checkExpiry(v, where) {
  if (v === null || v === undefined) return;
  if (typeof v !== "string" || !DATE_TIME.test(v) || Number.isNaN(Date.parse(v))) throw usageError(`${where}.expiresAt: must be an ISO date-time with offset, e.g. 2027-01-01T00:00:00Z.`);
  if (Date.parse(v) <= Date.now()) throw usageError(`${where}.expiresAt: ${v} has passed.`);
}

/**
 * A key spec is checked whole before anything is applied: its key is issued (and shown once) while
 * apply runs, so a spec the gateway refuses must not stop apply halfway, after other keys.
 * @param {Record<string, unknown>} k @param {string} where
 */
function checkKey(k, where) {
  checkFields(k, KEY_FIELDS, where);
  if (/** @type {string} */ (k.name).length > 100) throw usageError(`${where}: "name" is longer than 100 characters.`);
  if (k.permissions !== undefined && k.permissions !== null) {
    if (!Array.isArray(k.permissions) || k.permissions.length > 200) throw usageError(`${where}.permissions: must be a list of at most 200 permission strings (or null).`);
    for (const p of k.permissions) if (typeof p !== "string" || !PERMISSION.test(p)) throw usageError(`${where}.permissions: "${p}" is not a permission string (letters, digits, _ . : - / and * wildcards).`);
  }
  checkExpiry(k.expiresAt, where);
}

/** @param {string} file @returns {{ roles: RoleSpec[], users: UserSpec[] }} */
export function readApplyFile(file) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw usageError(`Cannot read ${file}: ${/** @type {Error} */ (err).message}`);
  }
  let doc;
  try {
    doc = parse(text);
  } catch (err) {
    throw usageError(`${file} is not valid YAML/JSON: ${/** @type {Error} */ (err).message}`);
  }
  const root = objectAt(doc ?? {}, file);
  for (const k of Object.keys(root)) if (k !== "roles" && k !== "users") throw usageError(`${file}: unknown top-level field "${k}" (allowed: roles, users).`);
  const roles = /** @type {unknown[]} */ (root.roles ?? []);
  const users = /** @type {unknown[]} */ (root.users ?? []);
  if (!Array.isArray(roles) || !Array.isArray(users)) throw usageError(`${file}: "roles" and "users" must be lists.`);
  const seen = new Set();
  const out = {
    roles: roles.map((r, i) => {
      const o = objectAt(r, `roles[${i}]`);
      checkFields(o, ROLE_FIELDS, `roles[${i}]`);
      if (!Array.isArray(o.permissions)) throw usageError(`roles[${i}] (${o.name}): "permissions" must be a list.`);
      checkLimits(o, `roles[${i}] (${o.name})`);
      if (seen.has(`r:${o.name}`)) throw usageError(`roles: "${o.name}" is listed twice.`);
      seen.add(`r:${o.name}`);
      return /** @type {RoleSpec} */ (o);
    }),
    users: users.map((u, i) => {
      const o = objectAt(u, `users[${i}]`);
      checkFields(o, USER_FIELDS, `users[${i}]`);
      if (seen.has(`u:${o.name}`)) throw usageError(`users: "${o.name}" is listed twice.`);
      seen.add(`u:${o.name}`);
      const keys = /** @type {unknown[]} */ (o.keys ?? []);
      if (!Array.isArray(keys)) throw usageError(`users[${i}] (${o.name}): "keys" must be a list of {name}.`);
      const labels = new Set();
      keys.forEach((k, j) => {
        const where = `users[${i}].keys[${j}]`;
        const spec = objectAt(k, where);
        checkKey(spec, where);
        if (labels.has(spec.name)) throw usageError(`${where}: key "${spec.name}" is listed twice for ${o.name}.`);
        labels.add(spec.name);
      });
      checkLimits(o, `users[${i}] (${o.name})`);
      return /** @type {UserSpec} */ (o);
    }),
  };
  return out;
}

/** Order-insensitive for lists of strings, key-order-insensitive for objects. @param {unknown} v @returns {string} */
function canonical(v) {
  if (Array.isArray(v)) return JSON.stringify([...v].map((x) => (typeof x === "string" ? x : canonical(x))).sort());
  if (v && typeof v === "object") return JSON.stringify(Object.keys(v).sort().map((k) => [k, canonical(/** @type {any} */ (v)[k])]));
  return JSON.stringify(v ?? null);
}
/** @param {unknown} v */
const instant = (v) => (v === null || v === undefined ? null : new Date(String(v)).getTime());

/**
 * The fields of `spec` that differ from `current`, as [field, before, after].
 * @param {Record<string, unknown>} spec @param {Record<string, unknown>} current @param {string[]} fields
 */
function diffFields(spec, current, fields) {
  /** @type {Array<[string, unknown, unknown]>} */
  const out = [];
  for (const f of fields) {
    if (!(f in spec)) continue;
    const same = f === "expiresAt" ? instant(spec[f]) === instant(current[f]) : canonical(spec[f]) === canonical(current[f] ?? null);
    if (!same) out.push([f, current[f] ?? null, spec[f] ?? null]);
  }
  return out;
}

const USER_DIFF_FIELDS = ["description", "group", "status", "roles", "metadata", "expiresAt", "allowedIps"];

/**
 * Per-limit differences between the overrides a file wants and those the gateway holds, as
 * [`limits.<name>`, before, after] (null = no override), in name order.
 * @param {LimitsSpec} want @param {LimitsSpec} have
 */
function diffLimits(want, have) {
  /** @type {Array<[string, unknown, unknown]>} */
  const out = [];
  for (const name of [...new Set([...Object.keys(have), ...Object.keys(want)])].sort()) {
    const from = have[name] ?? null;
    const to = want[name] ?? null;
    if (from !== to) out.push([`limits.${name}`, from, to]);
  }
  return out;
}

/** The admin API's overrides view as `{ name: limit }`. @param {{ limits: Record<string, { limit: number }> }} view */
const limitsOf = (view) => Object.fromEntries(Object.entries(view.limits).map(([k, v]) => [k, v.limit]));

/** The admin API's body for a whole override set. @param {LimitsSpec} limits */
const limitsBody = (limits) => ({ limits: Object.fromEntries(Object.entries(limits).map(([k, v]) => [k, { limit: v }])) });

/**
 * Every limit name a file uses must be one the gateway declares: refused here, before anything
 * is sent, rather than halfway through applying.
 * @param {AdminClient} api @param {{ roles: RoleSpec[], users: UserSpec[] }} desired
 */
async function checkLimitNames(api, desired) {
  const users = desired.users.map((u, i) => /** @type {const} */ ([`users[${i}] (${u.name})`, u.limits]));
  const roles = desired.roles.map((r, i) => /** @type {const} */ ([`roles[${i}] (${r.name})`, r.limits]));
  const used = [...roles, ...users].filter(([, l]) => l && Object.keys(l).length);
  if (!used.length) return;
  const known = new Set((await ok(api.GET("/limits"))).data.map((d) => d.name));
  for (const [where, limits] of used) {
    const unknown = Object.keys(/** @type {LimitsSpec} */ (limits)).filter((n) => !known.has(n));
    if (unknown.length) throw usageError(`${where}.limits: unknown limit ${unknown.map((n) => `"${n}"`).join(", ")}; this gateway declares: ${[...known].sort().join(", ") || "(none)"}.`);
  }
}

/**
 * Compares the file with the gateway and returns the changes (nothing is sent yet).
 * @param {AdminClient} api
 * @param {{ roles: RoleSpec[], users: UserSpec[] }} desired
 * @param {{ prune?: boolean }} opts
 * @param {(k: IssuedKey) => void} onIssued called as each key is issued, as changes run
 */
export async function plan(api, desired, opts, onIssued) {
  const [roles, users] = await Promise.all([
    all((cursor) => ok(api.GET("/roles", { params: { query: { limit: 100, cursor } } }))),
    all((cursor) => ok(api.GET("/users", { params: { query: { limit: 100, cursor } } }))),
  ]);
  const roleByName = new Map(roles.map((r) => [r.name, r]));
  const userByName = new Map(users.map((u) => [u.name, u]));
  /** @type {Change[]} */
  const changes = [];
  let unchanged = 0;

  await checkLimitNames(api, desired);

  for (const spec of desired.roles) {
    const { limits, ...fields } = spec;
    const cur = roleByName.get(spec.name);
    if (!cur) {
      const limitChanges = limits ? diffLimits(limits, {}) : [];
      changes.push({
        kind: "role",
        op: "create",
        name: spec.name,
        changes: [["permissions", null, spec.permissions], ...limitChanges],
        run: async () => {
          const role = await ok(api.POST("/roles", { body: fields }));
          if (limitChanges.length) await putLimits(api, "role", role.id, /** @type {LimitsSpec} */ (limits));
        },
      });
      continue;
    }
    const d = diffFields(/** @type {any} */ (fields), /** @type {any} */ (cur), ["description", "permissions"]);
    const path = { params: { path: { id: cur.id } } };
    const dl = limits ? diffLimits(limits, limitsOf(await ok(api.GET("/roles/{id}/limits", path)))) : [];
    if (d.length === 0 && dl.length === 0) unchanged++;
    else {
      const body = Object.fromEntries(d.map(([f, , to]) => [f, to]));
      changes.push({
        kind: "role",
        op: "update",
        name: spec.name,
        changes: [...d, ...dl],
        run: async () => {
          if (d.length) await ok(api.PATCH("/roles/{id}", { ...path, body }));
          if (dl.length) await putLimits(api, "role", cur.id, /** @type {LimitsSpec} */ (limits));
        },
      });
    }
  }

  for (const [i, spec] of desired.users.entries()) {
    const { keys: keySpecs = [], limits, ...fields } = spec;
    const cur = userByName.get(spec.name);
    // The gateway refuses to set an expiry that has passed; one it holds already (unchanged in
    // the file) is no change. Refused here, before anything is applied, not halfway through.
    if ("expiresAt" in fields && instant(fields.expiresAt) !== instant(cur?.expiresAt)) checkExpiry(fields.expiresAt, `users[${i}] (${spec.name})`);
    /** @type {{ id?: string }} */
    const ref = { id: cur?.id };
    if (!cur) {
      const limitChanges = limits ? diffLimits(limits, {}) : [];
      changes.push({
        kind: "user",
        op: "create",
        name: spec.name,
        changes: [...diffFields(fields, {}, USER_DIFF_FIELDS), ...limitChanges],
        run: async () => {
          ref.id = (await ok(api.POST("/users", { body: /** @type {any} */ (fields) }))).id;
          if (limitChanges.length) await putLimits(api, "user", ref.id, /** @type {LimitsSpec} */ (limits));
        },
      });
    } else {
      const d = diffFields(fields, /** @type {any} */ (cur), USER_DIFF_FIELDS);
      const dl = limits ? diffLimits(limits, limitsOf(await ok(api.GET("/users/{id}/limits", { params: { path: { id: cur.id } } })))) : [];
      if (d.length === 0 && dl.length === 0) unchanged++;
      else {
        const body = Object.fromEntries(d.map(([f, , to]) => [f, to]));
        changes.push({
          kind: "user",
          op: "update",
          name: spec.name,
          changes: [...d, ...dl],
          run: async () => {
            if (d.length) await ok(api.PATCH("/users/{id}", { params: { path: { id: cur.id } }, body }));
            if (dl.length) await putLimits(api, "user", cur.id, /** @type {LimitsSpec} */ (limits));
          },
        });
      }
    }
    // A declared key exists when the user has an active key with that label.
    const activeLabels = new Set();
    if (cur) {
      const keys = await all((cursor) => ok(api.GET("/users/{id}/keys", { params: { path: { id: cur.id }, query: { limit: 100, cursor } } })));
      for (const k of keys) if (k.status === "active" && k.name) activeLabels.add(k.name);
    }
    for (const k of keySpecs) {
      if (activeLabels.has(k.name)) {
        unchanged++;
        continue;
      }
      changes.push({
        kind: "key",
        op: "create",
        name: `${spec.name}/${k.name}`,
        changes: [],
        run: async () => {
          const issued = await ok(api.POST("/users/{id}/keys", { params: { path: { id: /** @type {string} */ (ref.id) } }, body: /** @type {any} */ (k) }));
          onIssued({ user: spec.name, name: k.name, id: issued.id, key: issued.key });
        },
      });
    }
  }

  if (opts.prune) {
    const wantUsers = new Set(desired.users.map((u) => u.name));
    const wantRoles = new Set(desired.roles.map((r) => r.name));
    for (const u of users) if (!wantUsers.has(u.name)) changes.push({ kind: "user", op: "delete", name: u.name, changes: [], run: () => ok(api.DELETE("/users/{id}", { params: { path: { id: u.id } } })) });
    for (const r of roles) if (!wantRoles.has(r.name)) changes.push({ kind: "role", op: "delete", name: r.name, changes: [], run: () => ok(api.DELETE("/roles/{id}", { params: { path: { id: r.id } } })) });
  }
  return { changes, unchanged };
}

/**
 * Makes a role's or user's overrides exactly `limits`: one PUT (it replaces the whole set), or a
 * DELETE when the file asks for none.
 * @param {AdminClient} api @param {"role" | "user"} kind @param {string} id @param {LimitsSpec} limits
 */
async function putLimits(api, kind, id, limits) {
  const path = { params: { path: { id } } };
  if (Object.keys(limits).length === 0) {
    await ok(kind === "role" ? api.DELETE("/roles/{id}/limits", path) : api.DELETE("/users/{id}/limits", path));
  } else {
    await ok(kind === "role" ? api.PUT("/roles/{id}/limits", { ...path, body: limitsBody(limits) }) : api.PUT("/users/{id}/limits", { ...path, body: limitsBody(limits) }));
  }
}

/** @param {unknown} v */
const show = (v) => (v === null || v === undefined ? "∅" : Array.isArray(v) ? `[${v.join(", ")}]` : typeof v === "object" ? JSON.stringify(v) : String(v));

/** @param {Change} c */
function describe(c) {
  const sign = { create: color.green("+"), update: color.yellow("~"), delete: color.red("-") }[c.op];
  const head = `${sign} ${c.kind} ${color.bold(c.name)}`;
  if (c.op === "create") {
    const what = c.kind === "key" ? " (issued; printed once below)" : c.changes.length ? `  ${c.changes.map(([f, , to]) => `${f}: ${show(to)}`).join(", ")}` : "";
    return head + what;
  }
  if (c.op === "update") return `${head}\n${c.changes.map(([f, from, to]) => `    ${f}: ${color.red(show(from))} → ${color.green(show(to))}`).join("\n")}`;
  return head;
}

/**
 * `portcullis apply <file>`: plan, print the diff, confirm, run in dependency order (roles before
 * the users that hold them; deletions last). A newly issued key is printed the moment it is issued
 * (with --json: in the closing JSON, written even when a later change fails): once issued it counts
 * as present, so a key not printed then would be live and lost for good.
 *
 * @param {AdminClient} api
 * @param {string} file
 * @param {{ dryRun?: boolean, yes?: boolean, prune?: boolean, json?: boolean, confirm: (q: string) => Promise<boolean> }} o
 */
export async function applyCommand(api, file, o) {
  const desired = readApplyFile(file);
  /** @type {IssuedKey[]} */
  const issuedKeys = [];
  const { changes, unchanged } = await plan(api, desired, o, (k) => {
    issuedKeys.push(k);
    if (o.json) return;
    if (issuedKeys.length === 1) process.stdout.write(`\n${color.bold("New keys")} — ${color.yellow("shown once, store them now")}:\n`);
    process.stdout.write(`  ${k.user}/${k.name}  ${k.id}  ${k.key}\n`);
  });
  const counts = { create: 0, update: 0, delete: 0 };
  for (const c of changes) counts[c.op]++;
  const summary = { create: counts.create, update: counts.update, delete: counts.delete, unchanged };
  const out = o.json ? process.stderr : process.stdout;
  for (const c of changes) out.write(`${describe(c)}\n`);
  out.write(`${color.bold("Plan:")} ${counts.create} to create, ${counts.update} to change, ${counts.delete} to delete, ${unchanged} unchanged.\n`);

  const asJson = () => changes.map((c) => ({ kind: c.kind, op: c.op, name: c.name, changes: c.changes.map(([field, from, to]) => ({ field, from, to })) }));
  if (changes.length === 0 || o.dryRun) {
    if (o.json) printJson({ applied: false, summary, changes: asJson(), issuedKeys: [] });
    return;
  }
  if (!o.yes && !(await o.confirm("Apply these changes?"))) throw usageError("Not applied: confirm on a terminal or pass --yes.");

  const order = (/** @type {Change} */ c) => (c.op === "delete" ? (c.kind === "user" ? 3 : 4) : { role: 0, user: 1, key: 2 }[c.kind]);
  const sorted = [...changes].sort((a, b) => order(a) - order(b));
  let done = 0;
  try {
    for (const c of sorted) {
      await c.run();
      done++;
    }
  } catch (err) {
    // Stopped halfway: say how far it got (the error itself is reported by the caller), and with
    // --json still print the keys issued so far — they are shown nowhere else.
    const failed = sorted[done];
    process.stderr.write(`${color.red("Stopped")} at ${failed.kind} ${failed.name}: ${done} of ${sorted.length} change(s) applied.\n`);
    if (o.json) printJson({ applied: false, failed: { kind: failed.kind, op: failed.op, name: failed.name }, done, summary, changes: asJson(), issuedKeys });
    throw err;
  }

  if (o.json) return printJson({ applied: true, summary, changes: asJson(), issuedKeys });
  process.stdout.write(`${color.green("Applied.")}\n`);
}
