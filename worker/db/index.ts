import { drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";

export type Database = ReturnType<typeof createDb>;

/** Drizzle over the D1 binding. Building one walks the whole schema; prefer `dbFor`. */
export const createDb = (d1: D1Database) => drizzle(d1, { schema });

// The D1 binding is the same object for the life of an isolate, and a drizzle instance holds no
// per-request state, so one per binding is enough. Building it per request (drizzle extracts the
// relational config from the schema each time) was the core's largest per-request CPU cost.
const perBinding = new WeakMap<D1Database, Database>();

/** The drizzle instance for a D1 binding, built once per binding per isolate. */
export function dbFor(d1: D1Database): Database {
  let db = perBinding.get(d1);
  if (!db) perBinding.set(d1, (db = createDb(d1)));
  return db;
}

export { schema };
