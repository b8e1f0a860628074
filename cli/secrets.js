// @ts-check
import { readFileSync } from "node:fs";
import { all, ok, resolveUser, userIdOf } from "./client.js";
import { CliError, EXIT, usageError } from "./errors.js";
import { color, printJson, table, when } from "./output.js";

/**
 * The secret's value: from --from-file, else stdin when piped/redirected (`< file`), else a
 * hidden prompt on the terminal. Never from a flag or an argument, which shells keep in history
 * and other users can see in `ps`. One trailing newline (as editors and `echo` add) is dropped.
 * @param {{ fromFile?: string }} o
 * @returns {Promise<string>}
 */
async function readValue(o) {
  let value;
  if (o.fromFile) {
    try {
      value = readFileSync(o.fromFile, "utf8");
    } catch (err) {
      throw usageError(`Cannot read ${o.fromFile}: ${/** @type {Error} */ (err).message}`);
    }
  } else if (!process.stdin.isTTY) {
    const chunks = [];
    for await (const c of process.stdin) chunks.push(c);
    value = Buffer.concat(chunks).toString("utf8");
  } else {
    value = await hiddenPrompt("Secret value (input hidden): ");
  }
  value = value.replace(/\r?\n$/, "");
  if (!value) throw usageError("The secret value is empty.");
  return value;
}

/** @param {string} question @returns {Promise<string>} */
function hiddenPrompt(question) {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    let value = "";
    /** @param {Buffer} buf */
    const onData = (buf) => {
      for (const ch of buf.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return done(null);
        if (ch === "\u0003") return done(usageError("Cancelled."));
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else value += ch;
      }
    };
    /** @param {Error | null} err */
    const done = (err) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off("data", onData);
      process.stderr.write("\n");
      err ? reject(err) : resolve(value);
    };
    stdin.on("data", onData);
  });
}

/** @param {import("commander").Command} program @param {import("./client.js").CommandHelpers} h */
export function registerSecrets(program, { apiFor, globals }) {
  const secrets = program.command("secrets").description("origin secrets (write-only: names, bindings and versions are shown, never values)");
  secrets
    .command("list")
    .description("list origin secrets")
    .option("--name <name>", "only this name")
    .action(async (o, cmd) => {
      const api = apiFor(cmd);
      const rows = await all((cursor) => ok(api.GET("/secrets", { params: { query: { limit: 100, cursor, name: o.name } } })));
      if (globals(cmd).json) return printJson(rows);
      console.log(rows.length ? table(["NAME", "SCOPE", "USER", "GROUP", "VERSION", "UPDATED"], rows.map((s) => [s.name, s.scope, s.userId, s.group, s.version, when(s.updatedAt)])) : color.dim("No secrets."));
    });
  secrets
    .command("set <name>")
    .description("create or rotate a secret; the value comes from --from-file, stdin (`< file`) or a hidden prompt — never a flag")
    .option("--from-file <path>", "read the value from this file")
    .option("--user <user>", "bind to this proxy user (id or name)")
    .option("--group <group>", "bind to this group")
    .action(async (name, o, cmd) => {
      const api = apiFor(cmd);
      if (o.user && o.group) throw usageError("Pass --user or --group, not both.");
      const userId = o.user ? (await resolveUser(api, o.user)).id : undefined;
      const value = await readValue(o);
      const s = await ok(api.PUT("/secrets/{name}", { params: { path: { name } }, body: { value, userId, group: o.group } }));
      if (globals(cmd).json) return printJson(s);
      console.log(`${color.green("Stored")} ${s.name} (${s.scope}) version ${s.version}`);
    });
  secrets
    .command("rekey")
    .description("re-encrypt every secret still sealed with SECRETS_KEY_PREVIOUS under SECRETS_KEY (the second step of rotating the store's key), a page per call until the store is done")
    .option("--page-size <n>", "secrets per admin API call (1-100; the gateway's default keeps a call within D1's per-invocation query limit)")
    .action(async (o, cmd) => {
      const api = apiFor(cmd);
      const limit = o.pageSize === undefined ? undefined : Number(o.pageSize);
      if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= 100)) throw usageError("--page-size must be a whole number from 1 to 100.");
      // Every page, summed: the operator needs the store's answer, not one page's.
      /** @type {{ total: number, rekeyed: number, alreadyCurrent: number, undecryptable: import("./client.js").Schemas["OriginSecret"][], pages: number }} */
      const r = { total: 0, rekeyed: 0, alreadyCurrent: 0, undecryptable: [], pages: 0 };
      /** @type {string | undefined} */
      let cursor;
      do {
        /** @type {import("./client.js").Schemas["OriginSecretRekey"]} */
        const p = await ok(api.POST("/secrets/rekey", { params: { query: { limit, cursor } } }));
        r.total += p.total;
        r.rekeyed += p.rekeyed;
        r.alreadyCurrent += p.alreadyCurrent;
        r.undecryptable.push(...p.undecryptable);
        r.pages++;
        cursor = p.nextCursor ?? undefined;
      } while (cursor);
      if (globals(cmd).json) printJson(r);
      else {
        console.log(`${color.green("Re-encrypted")} ${r.rekeyed} of ${r.total} secret(s); ${r.alreadyCurrent} already under SECRETS_KEY.`);
        if (r.undecryptable.length) {
          console.log(color.red(`${r.undecryptable.length} secret(s) open with neither key; set their values again:`));
          console.log(table(["NAME", "SCOPE", "USER", "GROUP", "VERSION"], r.undecryptable.map((s) => [s.name, s.scope, s.userId, s.group, s.version])));
        } else if (r.rekeyed === 0) console.log(color.dim("Nothing is left under the previous key: SECRETS_KEY_PREVIOUS can be removed."));
      }
      // Exit 1 (README) in --json mode too. Thrown, not process.exitCode: run() returns the exit code.
      if (r.undecryptable.length) throw new CliError(`${r.undecryptable.length} secret(s) open with neither SECRETS_KEY nor SECRETS_KEY_PREVIOUS.`, EXIT.FAILURE);
    });
  secrets
    .command("delete <name>")
    .description("delete a secret (requests that need it then fail closed)")
    .option("--user <user>", "the one bound to this proxy user")
    .option("--group <group>", "the one bound to this group")
    .option("-y, --yes", "do not ask")
    .action(async (name, o, cmd) => {
      const api = apiFor(cmd);
      if (!o.yes) throw usageError("Deleting a secret breaks the routes that use it: pass --yes.");
      // By id also once the user is gone: gateways before 20a29bc left its secrets behind.
      const userId = o.user ? await userIdOf(api, o.user) : undefined;
      await ok(api.DELETE("/secrets/{name}", { params: { path: { name }, query: { userId, group: o.group } } }));
      if (globals(cmd).json) return printJson({ name, deleted: true });
      console.log(`${color.red("Deleted")} ${name}`);
    });
}
