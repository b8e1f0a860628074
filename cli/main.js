// @ts-check
import { Command, CommanderError, Option } from "commander";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline/promises";
import { applyCommand } from "./apply.js";
import { registerAudit } from "./audit.js";
import { registerLimits } from "./limits.js";
import { registerSecrets } from "./secrets.js";
import { adminClient, all, ok, resolveRole, resolveUser } from "./client.js";
import { CliError, EXIT, usageError } from "./errors.js";
import { color, printJson, props, statusColor, table, when } from "./output.js";
import { resolveTarget } from "./profiles.js";

/** @typedef {import("./client.js").Schemas} Schemas */
/** @typedef {{ json?: boolean, url?: string, token?: string, profile?: string }} GlobalOpts */

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));

/** `90s`, `15m`, `1h`, `7d` or plain seconds → seconds. @param {string} text */
export function parseDuration(text) {
  const m = /^(\d+)\s*(s|m|h|d)?$/.exec(text.trim());
  if (!m) throw usageError(`Not a duration: "${text}" (use e.g. 90s, 15m, 1h, 7d).`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[/** @type {"s"|"m"|"h"|"d"} */ (m[2] ?? "s")];
}

/** An ISO date-time in the future, or a duration from now. @param {string} text */
function parseExpiry(text) {
  if (/^\d+\s*[smhd]?$/.test(text.trim())) return new Date(Date.now() + parseDuration(text) * 1000).toISOString();
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) throw usageError(`Not a date-time or duration: "${text}".`);
  return d.toISOString();
}

/** @param {string} text */
function parseJsonObject(text) {
  try {
    const v = JSON.parse(text);
    if (v && typeof v === "object" && !Array.isArray(v)) return v;
  } catch {
    /* reported below */
  }
  throw usageError(`--metadata must be a JSON object, e.g. '{"team":"billing"}'.`);
}

/** @param {string} v @param {string[]} prev */
const collect = (v, prev = []) => [...prev, ...v.split(",").map((s) => s.trim()).filter(Boolean)];

/** @param {string} question */
async function confirm(question) {
  if (!process.stdin.isTTY || !process.stderr.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

/** @param {Command} cmd @returns {GlobalOpts} */
const globals = (cmd) => cmd.optsWithGlobals();
/** @param {Command} cmd */
const apiFor = (cmd) => adminClient(resolveTarget(globals(cmd)));

/**
 * What an operator needs to read in a status column: a user whose expiry has passed is refused
 * like a disabled one, yet the API's stored status still says active (keys carry "expired" in
 * their own status; a user's status is the one PATCH takes, so the API keeps it as stored).
 * @param {Schemas["ProxyUser"]} u
 */
const userStatus = (u) => (u.status === "active" && u.expiresAt && Date.parse(u.expiresAt) <= Date.now() ? "expired" : u.status);

/** @param {Schemas["ProxyUser"][]} users */
const usersTable = (users) =>
  table(
    ["ID", "NAME", "GROUP", "STATUS", "ROLES", "CREATED"],
    users.map((u) => [u.id, u.name, u.group, statusColor(userStatus(u)), u.roles.join(", "), when(u.createdAt)]),
  );

/** @param {Schemas["ApiKey"][]} keys */
const keysTable = (keys) =>
  table(
    ["ID", "START", "NAME", "STATUS", "PERMISSIONS", "LAST USED", "EXPIRES"],
    keys.map((k) => [k.id, `${k.start}…`, k.name, statusColor(k.status), k.permissions?.join(", ") ?? color.dim("(user's)"), when(k.lastUsedAt), when(k.expiresAt)]),
  );

/** @param {Schemas["Role"][]} roles */
const rolesTable = (roles) => table(["ID", "NAME", "PERMISSIONS", "DESCRIPTION"], roles.map((r) => [r.id, r.name, r.permissions.join(", "), r.description]));

/** @param {Schemas["ProxyUser"]} u */
const userProps = (u) =>
  props([
    ["id", u.id],
    ["name", u.name],
    ["status", statusColor(userStatus(u))],
    ["group", u.group],
    ["description", u.description],
    ["roles", u.roles.join(", ")],
    ["expires", when(u.expiresAt)],
    ["allowed IPs", u.allowedIps?.join(", ") ?? "any"],
    ["metadata", Object.keys(u.metadata).length ? JSON.stringify(u.metadata) : null],
    ["created", when(u.createdAt)],
    ["updated", when(u.updatedAt)],
  ]);

/**
 * Prints a newly issued key: the key itself goes alone on stdout (so `$(portcullis keys issue …)`
 * captures just the key when piped), the explanation to stderr.
 * @param {Schemas["IssuedApiKey"]} issued
 * @param {GlobalOpts} g
 */
function printIssued(issued, g) {
  if (g.json) return printJson(issued);
  process.stderr.write(`${color.bold(`Key ${issued.id}`)} for ${issued.userId} — ${color.yellow("shown once, store it now")}:\n`);
  process.stdout.write(`${issued.key}\n`);
}

/** @returns {Command} */
export function buildProgram() {
  const program = new Command("portcullis")
    .description("Manage a Portcullis gateway: proxy users, keys, roles — from a terminal or a script.")
    .version(pkg.version)
    .option("--url <url>", "gateway base URL (default: $PORTCULLIS_URL or the profile's)")
    .option("--token <token>", "admin token (prefer $PORTCULLIS_ADMIN_TOKEN: flags land in shell history)")
    .option("-p, --profile <name>", "profile from the config file ($PORTCULLIS_CONFIG or ~/.config/portcullis/config.yaml)")
    .option("--json", "print JSON instead of tables (for scripts)")
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({ outputError: (str, write) => write(color.red(str)) });

  // ── users ────────────────────────────────────────────────────────────────
  const users = program.command("users").description("proxy users: the identities API consumers hold");
  users
    .command("list")
    .description("list proxy users")
    .option("--group <group>", "only this group")
    .addOption(new Option("--status <status>", "only this status").choices(["active", "disabled"]))
    .option("--role <role>", "only holders of this role")
    .option("--search <text>", "name contains text")
    .action(async (o, cmd) => {
      const api = apiFor(cmd);
      const rows = await all((cursor) => ok(api.GET("/users", { params: { query: { limit: 100, cursor, group: o.group, status: o.status, role: o.role, search: o.search } } })));
      if (globals(cmd).json) return printJson(rows);
      console.log(rows.length ? usersTable(rows) : color.dim("No proxy users."));
    });
  users
    .command("create <name>")
    .description("create a proxy user")
    .option("--group <group>", "group, e.g. internal or partner")
    .option("--description <text>", "who or what this is")
    .option("--role <role>", "role to assign (repeat or comma-separate)", collect)
    .option("--disabled", "create it disabled")
    .option("--expires <when>", "ISO date-time or duration from now (30d) after which all its keys are refused")
    .option("--allow-ip <cidr>", "only these client IPs/CIDRs (repeat or comma-separate)", collect)
    .option("--metadata <json>", "JSON object for your own bookkeeping")
    .action(async (name, o, cmd) => {
      const api = apiFor(cmd);
      const user = await ok(
        api.POST("/users", {
          body: {
            name,
            group: o.group,
            description: o.description,
            roles: o.role,
            status: o.disabled ? "disabled" : undefined,
            expiresAt: o.expires ? parseExpiry(o.expires) : undefined,
            allowedIps: o.allowIp,
            metadata: o.metadata ? parseJsonObject(o.metadata) : undefined,
          },
        }),
      );
      if (globals(cmd).json) return printJson(user);
      console.log(`${color.green("Created")} ${user.name} (${user.id})`);
    });
  users
    .command("show <user>")
    .description("show a proxy user (id or name) with its keys")
    .action(async (ref, _o, cmd) => {
      const api = apiFor(cmd);
      const user = await resolveUser(api, ref);
      const keys = await all((cursor) => ok(api.GET("/users/{id}/keys", { params: { path: { id: user.id }, query: { limit: 100, cursor } } })));
      if (globals(cmd).json) return printJson({ ...user, keys });
      console.log(`${userProps(user)}\n\n${color.bold("Keys")}\n${keys.length ? keysTable(keys) : color.dim("none")}`);
    });
  users
    .command("update <user>")
    .description("change a proxy user's fields")
    .option("--name <name>", "rename")
    .option("--group <group>", "set the group")
    .option("--no-group", "remove the group")
    .option("--description <text>", "set the description")
    .option("--roles <roles>", "replace the roles (comma-separated; empty string for none)")
    .option("--add-role <role>", "add a role (repeatable)", collect)
    .option("--remove-role <role>", "remove a role (repeatable)", collect)
    .option("--expires <when>", "ISO date-time or duration from now")
    .option("--no-expires", "never expire")
    .option("--allow-ip <cidr>", "replace the IP allowlist (repeatable)", collect)
    .option("--any-ip", "remove the IP allowlist")
    .option("--metadata <json>", "replace the metadata object")
    .action(async (ref, o, cmd) => {
      const api = apiFor(cmd);
      const user = await resolveUser(api, ref);
      /** @type {Schemas["ProxyUserPatch"]} */
      const body = {};
      if (o.name) body.name = o.name;
      if (o.group === false) body.group = null;
      else if (typeof o.group === "string") body.group = o.group;
      if (o.description !== undefined) body.description = o.description || null;
      if (o.roles !== undefined || o.addRole || o.removeRole) {
        const base = o.roles !== undefined ? collect(o.roles, []) : user.roles;
        body.roles = [...new Set([...base, ...(o.addRole ?? [])])].filter((r) => !(o.removeRole ?? []).includes(r));
      }
      // The API accepts null (never expire); the document's date-time override drops "nullable".
      if (o.expires === false) body.expiresAt = /** @type {any} */ (null);
      else if (typeof o.expires === "string") body.expiresAt = parseExpiry(o.expires);
      if (o.anyIp) body.allowedIps = null;
      else if (o.allowIp) body.allowedIps = o.allowIp;
      if (o.metadata) body.metadata = parseJsonObject(o.metadata);
      if (Object.keys(body).length === 0) throw usageError("Nothing to change: pass at least one option (see --help).");
      const updated = await ok(api.PATCH("/users/{id}", { params: { path: { id: user.id } }, body }));
      if (globals(cmd).json) return printJson(updated);
      console.log(`${color.green("Updated")} ${updated.name} (${updated.id})`);
    });
  for (const [verb, status] of /** @type {const} */ ([
    ["disable", "disabled"],
    ["enable", "active"],
  ])) {
    users
      .command(`${verb} <user>`)
      .description(verb === "disable" ? "disable a proxy user: every key of it is refused (at once where the call lands, everywhere within KEY_CACHE_TTL_SECONDS)" : "re-enable a disabled proxy user")
      .action(async (ref, _o, cmd) => {
        const api = apiFor(cmd);
        const user = await resolveUser(api, ref);
        const updated = await ok(api.PATCH("/users/{id}", { params: { path: { id: user.id } }, body: { status } }));
        if (globals(cmd).json) return printJson(updated);
        console.log(`${updated.name} is now ${statusColor(updated.status)}`);
      });
  }
  users
    .command("delete <user>")
    .description("delete a proxy user and revoke all its keys")
    .option("-y, --yes", "do not ask for confirmation")
    .action(async (ref, o, cmd) => {
      const api = apiFor(cmd);
      const user = await resolveUser(api, ref);
      if (!o.yes && !(await confirm(`Delete ${user.name} (${user.id}) and revoke all its keys?`))) throw usageError("Not deleted: confirm on a terminal or pass --yes.");
      const res = await ok(api.DELETE("/users/{id}", { params: { path: { id: user.id } } }));
      if (globals(cmd).json) return printJson(res);
      console.log(`${color.red("Deleted")} ${user.name}; revoked ${res.revokedKeyIds.length} key(s)`);
    });

  // ── keys ─────────────────────────────────────────────────────────────────
  const keys = program.command("keys").description("API keys of proxy users (a key is shown only once, when issued)");
  keys
    .command("issue <user>")
    .description("issue a key to a proxy user (id or name); prints the key once")
    .option("--name <label>", "label, e.g. where the key is deployed")
    .option("--permission <perm>", "narrow the key to these permissions (repeatable)", collect)
    .option("--expires <when>", "ISO date-time or duration from now (e.g. 90d)")
    .action(async (ref, o, cmd) => {
      const api = apiFor(cmd);
      const user = await resolveUser(api, ref);
      const issued = await ok(
        api.POST("/users/{id}/keys", { params: { path: { id: user.id } }, body: { name: o.name, permissions: o.permission, expiresAt: o.expires ? parseExpiry(o.expires) : undefined } }),
      );
      printIssued(issued, globals(cmd));
    });
  keys
    .command("list <user>")
    .description("list a proxy user's keys (never the keys themselves)")
    .action(async (ref, _o, cmd) => {
      const api = apiFor(cmd);
      const user = await resolveUser(api, ref);
      const rows = await all((cursor) => ok(api.GET("/users/{id}/keys", { params: { path: { id: user.id }, query: { limit: 100, cursor } } })));
      if (globals(cmd).json) return printJson(rows);
      console.log(rows.length ? keysTable(rows) : color.dim("No keys."));
    });
  keys
    .command("show <keyId>")
    .description("show one key")
    .action(async (id, _o, cmd) => {
      const k = await ok(apiFor(cmd).GET("/keys/{id}", { params: { path: { id } } }));
      if (globals(cmd).json) return printJson(k);
      console.log(keysTable([k]));
    });
  keys
    .command("rotate <keyId>")
    .description("issue a successor key; the old one keeps working for the grace period")
    .option("--grace <duration>", "how long the old key keeps working (0 = revoke now; e.g. 1h, 7d)", "0")
    .action(async (id, o, cmd) => {
      const g = globals(cmd);
      const issued = await ok(apiFor(cmd).POST("/keys/{id}/rotate", { params: { path: { id } }, body: { gracePeriodSeconds: parseDuration(o.grace) } }));
      if (!g.json) process.stderr.write(`Old key ${issued.previous.id}: ${issued.previous.status === "revoked" ? "revoked" : `works until ${when(issued.previous.expiresAt)}`}\n`);
      printIssued(issued, g);
    });
  keys
    .command("revoke <keyId>")
    .description("revoke a key (refused at once where the call lands, everywhere within KEY_CACHE_TTL_SECONDS)")
    .action(async (id, _o, cmd) => {
      const k = await ok(apiFor(cmd).POST("/keys/{id}/revoke", { params: { path: { id } } }));
      if (globals(cmd).json) return printJson(k);
      console.log(`${k.id} (${k.start}…) is ${statusColor(k.status)}`);
    });

  // ── roles ────────────────────────────────────────────────────────────────
  const roles = program.command("roles").description("roles: named sets of permission strings");
  roles
    .command("list")
    .description("list roles")
    .action(async (_o, cmd) => {
      const api = apiFor(cmd);
      const rows = await all((cursor) => ok(api.GET("/roles", { params: { query: { limit: 100, cursor } } })));
      if (globals(cmd).json) return printJson(rows);
      console.log(rows.length ? rolesTable(rows) : color.dim("No roles."));
    });
  roles
    .command("create <name>")
    .description("create a role")
    .requiredOption("--permission <perm>", "permission string, * wildcards allowed (repeat or comma-separate)", collect)
    .option("--description <text>", "what the role is for")
    .action(async (name, o, cmd) => {
      const role = await ok(apiFor(cmd).POST("/roles", { body: { name, permissions: o.permission, description: o.description } }));
      if (globals(cmd).json) return printJson(role);
      console.log(`${color.green("Created")} role ${role.name} (${role.id})`);
    });
  roles
    .command("show <role>")
    .description("show a role (id or name)")
    .action(async (ref, _o, cmd) => {
      const role = await resolveRole(apiFor(cmd), ref);
      if (globals(cmd).json) return printJson(role);
      console.log(props([["id", role.id], ["name", role.name], ["description", role.description], ["permissions", role.permissions.join(", ")], ["updated", when(role.updatedAt)]]));
    });
  roles
    .command("update <role>")
    .description("change a role; permission changes reach every holder within the key cache TTL")
    .option("--name <name>", "rename")
    .option("--description <text>", "set the description")
    .option("--permissions <perms>", "replace the permissions (comma-separated)")
    .option("--add-permission <perm>", "add a permission (repeatable)", collect)
    .option("--remove-permission <perm>", "remove a permission (repeatable)", collect)
    .action(async (ref, o, cmd) => {
      const api = apiFor(cmd);
      const role = await resolveRole(api, ref);
      /** @type {Schemas["RolePatch"]} */
      const body = {};
      if (o.name) body.name = o.name;
      if (o.description !== undefined) body.description = o.description || null;
      if (o.permissions !== undefined || o.addPermission || o.removePermission) {
        const base = o.permissions !== undefined ? collect(o.permissions, []) : role.permissions;
        body.permissions = [...new Set([...base, ...(o.addPermission ?? [])])].filter((p) => !(o.removePermission ?? []).includes(p));
      }
      if (Object.keys(body).length === 0) throw usageError("Nothing to change: pass at least one option (see --help).");
      const updated = await ok(api.PATCH("/roles/{id}", { params: { path: { id: role.id } }, body }));
      if (globals(cmd).json) return printJson(updated);
      console.log(`${color.green("Updated")} role ${updated.name}: ${updated.permissions.join(", ")}`);
    });
  roles
    .command("delete <role>")
    .description("delete a role (removed from every user holding it)")
    .option("-y, --yes", "do not ask for confirmation")
    .action(async (ref, o, cmd) => {
      const api = apiFor(cmd);
      const role = await resolveRole(api, ref);
      if (!o.yes && !(await confirm(`Delete role ${role.name}? Every holder loses its permissions.`))) throw usageError("Not deleted: confirm on a terminal or pass --yes.");
      await ok(api.DELETE("/roles/{id}", { params: { path: { id: role.id } } }));
      if (globals(cmd).json) return printJson({ id: role.id, deleted: true });
      console.log(`${color.red("Deleted")} role ${role.name}`);
    });

  // ── apply ────────────────────────────────────────────────────────────────
  program
    .command("apply <file>")
    .description("make roles and proxy users (and their limit overrides) match a YAML/JSON file: shows the diff, then applies it")
    .option("--dry-run", "only show the diff")
    .option("-y, --yes", "apply without asking (required when not on a terminal)")
    .option("--prune", "also delete users and roles the file does not list")
    .action(async (file, o, cmd) => applyCommand(apiFor(cmd), file, { ...o, json: globals(cmd).json, confirm }));

  for (const register of extraCommands) register(program, { apiFor, globals });
  return program;
}

/**
 * Commands for optional gateway features (limits, secrets, audit, usage) register here.
 * @type {Array<(program: Command, helpers: import("./client.js").CommandHelpers) => void>}
 */
export const extraCommands = [registerLimits, registerSecrets, registerAudit];

/** Prints an error the way every command does: the detail, then code and requestId to quote in a report. */
/** @param {any} err */
function report(err) {
  if (err instanceof CliError) {
    const p = err.problem;
    process.stderr.write(`${color.red("error:")} ${err.message}\n`);
    for (const e of p.errors ?? []) if (!err.message.includes(e.message)) process.stderr.write(`  ${e.path}: ${e.message}\n`);
    const meta = [p.code && `code ${p.code}`, p.status && `HTTP ${p.status}`, p.requestId && `requestId ${p.requestId}`].filter(Boolean).join(", ");
    if (meta) process.stderr.write(color.dim(`(${meta})\n`));
    // Whoever runs the CLI is an operator: say how to get back in (the problem detail, sent to anyone, stays short).
    if (p.code === "ADMIN_THROTTLED") {
      process.stderr.write(
        `hint: wrong admin tokens from this address (yours, or someone's sharing it) locked it out until Retry-After.\n` +
          `      To clear it: npx wrangler d1 execute DB --remote --command "DELETE FROM admin_sign_in_failures" (--local for npm start).\n`,
      );
    }
    return err.exitCode;
  }
  process.stderr.write(`${color.red("error:")} ${err?.stack ?? err}\n`);
  return EXIT.FAILURE;
}

/** Runs the CLI; resolves to the exit code. @param {string[]} argv */
export async function run(argv) {
  const program = buildProgram();
  program.exitOverride();
  for (const c of program.commands) {
    c.exitOverride();
    for (const sub of c.commands) sub.exitOverride();
  }
  try {
    await program.parseAsync(argv);
    // Commands fail by throwing a CliError; a process.exitCode set on the way is kept all the
    // same, since bin/ sets process.exitCode from what run() returns.
    return Number(process.exitCode ?? 0) || EXIT.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; a bare group (`portcullis users`) shows help with exit 1,
      // and bad options/arguments are usage errors: both become USAGE for scripts.
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    return report(err);
  }
}
