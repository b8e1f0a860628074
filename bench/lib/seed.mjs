// Seeds the benchmark's in-memory D1 by direct SQL (nothing is committed as data): the
// migrations from migrations/, one role granting the benchmark permission, N proxy users holding
// it, and one API key each (real keys in the gateway's format, stored as SHA-256 hashes).
// Returns the plaintext keys; the load uses the first `loadKeys` of them.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { importForNode } from "./build.mjs";

const root = path.resolve(import.meta.dirname, "..", "..");

async function applyMigrations(db) {
  const dir = path.join(root, "migrations");
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".sql")).sort()) {
    const statements = readFileSync(path.join(dir, file), "utf8")
      .split("--> statement-breakpoint")
      .map((s) => s.trim())
      .filter(Boolean);
    await db.batch(statements.map((s) => db.prepare(s)));
  }
}

/** Inserts rows as multi-row VALUES statements (the values are ours: ids, hashes, fixed text). */
async function insertRows(db, table, columns, rows, chunk = 500) {
  const lit = (v) => (v === null ? "NULL" : typeof v === "number" ? String(v) : `'${String(v).replaceAll("'", "''")}'`);
  const statements = [];
  for (let i = 0; i < rows.length; i += chunk) {
    const values = rows.slice(i, i + chunk).map((r) => `(${r.map(lit).join(",")})`);
    statements.push(db.prepare(`INSERT INTO ${table} (${columns.join(",")}) VALUES ${values.join(",")}`));
  }
  for (let i = 0; i < statements.length; i += 20) await db.batch(statements.slice(i, i + 20));
}

export async function seed(db, { users, loadKeys, permission, scratch }) {
  const { generateApiKey } = await importForNode(scratch, "worker/lib/api-key.ts", "api-key");
  // Same digest as hashApiKey (SHA-256, hex), synchronous: 10,000 WebCrypto round trips are slow.
  const hashApiKey = (key) => createHash("sha256").update(key).digest("hex");
  await applyMigrations(db);
  const now = Date.now();
  const roleId = "rol_bench";
  await insertRows(db, "roles", ["id", "name", "description", "permissions", "created_at", "updated_at"], [[roleId, "bench-reader", "benchmark", JSON.stringify([permission]), now, now]]);
  const userRows = [];
  const roleRows = [];
  const keyRows = [];
  const keys = [];
  for (let i = 0; i < users; i++) {
    const id = `usr_bench${String(i).padStart(6, "0")}`;
    userRows.push([id, `bench-user-${i}`, i % 2 ? "partner" : "internal", "active", now, now]);
    roleRows.push([id, roleId, now]);
    const { key, start } = generateApiKey();
    keys.push(key);
    keyRows.push([`key_bench${String(i).padStart(6, "0")}`, id, "bench", hashApiKey(key), start, now, now]);
  }
  await insertRows(db, "proxy_users", ["id", "name", '"group"', "status", "created_at", "updated_at"], userRows);
  await insertRows(db, "user_roles", ["user_id", "role_id", "created_at"], roleRows);
  await insertRows(db, "api_keys", ["id", "user_id", "name", "hash", "start", "created_at", "updated_at"], keyRows);
  // Spread the load's keys over the whole population, not just the first rows.
  const step = Math.max(1, Math.floor(users / loadKeys));
  const load = Array.from({ length: Math.min(loadKeys, users) }, (_, i) => keys[i * step]);
  const loadUserIds = Array.from({ length: load.length }, (_, i) => userRows[i * step][0]);
  const keysFile = path.join(scratch, "load-keys.txt");
  writeFileSync(keysFile, `${load.join("\n")}\n`);
  const count = await db.prepare("SELECT (SELECT count(*) FROM proxy_users) AS users, (SELECT count(*) FROM api_keys) AS keys").first();
  return { keysFile, keys: load, loadUserIds, counts: count };
}
