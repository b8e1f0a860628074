#!/usr/bin/env node
// `npm run db:check`: fails when the drizzle schema (worker/db/schema/*) and the committed
// migrations/ disagree, i.e. someone changed the schema without running `npm run db:generate`,
// or added a .sql file drizzle's journal does not know about.
//
// How: copy migrations/ to a temp dir, run `drizzle-kit generate` against the copy
// (DRIZZLE_OUT, honoured by drizzle.config.ts) and see whether it wanted to write anything.
// The real migrations/ directory is never touched.
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const migrationsDir = path.join(root, "migrations");
const drizzleKit = path.join(root, "node_modules", ".bin", process.platform === "win32" ? "drizzle-kit.cmd" : "drizzle-kit");
const IN_SYNC = "No schema changes, nothing to migrate";
const TIMEOUT_MS = 60_000;

/** Thrown for every failed check; reported once by the top level (after the temp dir is gone). */
class CheckFailed extends Error {
  constructor(message, output) {
    super(message);
    this.output = output;
  }
}

function fail(message, output) {
  throw new CheckFailed(message, output);
}

/** Every file under dir, as paths relative to it. */
function listFiles(dir, prefix = "") {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(path.join(dir, e.name), path.join(prefix, e.name)) : [path.join(prefix, e.name)],
  );
}

/** Runs drizzle-kit with stdin closed (it must never wait on a prompt); resolves with its output. */
function run(cmd, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(Object.assign(new Error(`drizzle-kit did not finish within ${TIMEOUT_MS / 1000} s`), { output }));
    }, TIMEOUT_MS);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(Object.assign(err, { output }));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/** The committed journal and the committed .sql files must name the same migrations. */
function checkJournal() {
  const journalPath = path.join(migrationsDir, "meta", "_journal.json");
  if (!existsSync(journalPath)) fail("migrations/meta/_journal.json is missing (run `npm run db:generate`).");
  let journal;
  try {
    journal = JSON.parse(readFileSync(journalPath, "utf8"));
  } catch (err) {
    fail(`migrations/meta/_journal.json is not valid JSON: ${err.message}`);
  }
  const tags = new Set(journal.entries.map((e) => e.tag));
  const sqlFiles = readdirSync(migrationsDir).filter((f) => f.endsWith(".sql"));
  const sqlTags = new Set(sqlFiles.map((f) => f.slice(0, -4)));
  const notInJournal = [...sqlTags].filter((t) => !tags.has(t));
  const missingSql = [...tags].filter((t) => !sqlTags.has(t));
  if (notInJournal.length) {
    fail(`migrations/ has .sql files drizzle's journal does not know: ${notInJournal.join(", ")}.\n` +
      "wrangler would apply them but drizzle-kit would not account for them; create hand-written migrations with `npm run db:generate -- --custom`.");
  }
  if (missingSql.length) fail(`migrations/meta/_journal.json lists migrations with no .sql file: ${missingSql.join(", ")}.`);
  return tags.size;
}

async function main() {
  if (!existsSync(drizzleKit)) fail("drizzle-kit is not installed: run `npm ci` first.");
  if (!existsSync(migrationsDir)) fail("there is no migrations/ directory.");
  const migrationCount = checkJournal();

  const tmp = mkdtempSync(path.join(os.tmpdir(), "portcullis-db-check-"));
  try {
    cpSync(migrationsDir, tmp, { recursive: true });
    const before = new Map(listFiles(tmp).map((f) => [f, readFileSync(path.join(tmp, f), "utf8")]));
    // drizzle-kit 0.31 prefixes `out` with "./", so an absolute path breaks (and it still exits 0):
    // hand it the temp dir relative to the repo root, where it runs.
    const out = path.relative(root, tmp);
    if (path.isAbsolute(out)) fail(`cannot express the temp dir ${tmp} relative to ${root} (different drive?).`);

    let result;
    try {
      result = await run(drizzleKit, ["generate"], { ...process.env, DRIZZLE_OUT: out });
    } catch (err) {
      fail(`could not run drizzle-kit: ${err.message}`, err.output);
    }
    const { code, output } = result;

    const after = listFiles(tmp);
    const added = after.filter((f) => !before.has(f));
    const changed = after.filter((f) => before.has(f) && before.get(f) !== readFileSync(path.join(tmp, f), "utf8"));
    const newSql = added.filter((f) => f.endsWith(".sql"));

    if (newSql.length) {
      const shown = newSql.map((f) => `\n  ${f}:\n${readFileSync(path.join(tmp, f), "utf8").replace(/^/gm, "    ")}`).join("");
      fail(
        "worker/db/schema/ has changes that no committed migration covers.\n" +
          "Run `npm run db:generate`, review the new file(s) in migrations/ and commit them.\n" +
          `drizzle-kit would generate:${shown}`,
      );
    }
    if (code !== 0) fail(`drizzle-kit exited with code ${code}.`, output);
    if (added.length || changed.length) {
      fail(`drizzle-kit changed the migration metadata (${[...added, ...changed].join(", ")}): the committed migrations/meta is out of date.`, output);
    }
    // drizzle-kit reports some failures (bad config, unreadable snapshot, a prompt it cannot ask
    // without a TTY, e.g. "was this column renamed?") with exit code 0: insist on its all-clear.
    if (!output.includes(IN_SYNC)) {
      fail(
        "drizzle-kit did not confirm that the schema and migrations agree.\n" +
          "If it wanted to ask a question (e.g. whether a table or column was renamed), the schema changed: run `npm run db:generate` in a terminal.",
        output,
      );
    }
    const tables = /^(\d+) tables$/m.exec(output)?.[1];
    console.log(`db:check ok: worker/db/schema matches migrations/ (${tables ?? "?"} tables, ${migrationCount} migration${migrationCount === 1 ? "" : "s"}).`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

try {
  await main();
} catch (err) {
  if (!(err instanceof CheckFailed)) throw err;
  console.error(`\ndb:check FAILED: ${err.message}`);
  if (err.output) console.error(`\n--- drizzle-kit output ---\n${err.output.trimEnd()}\n--------------------------`);
  process.exitCode = 1;
}
