import { drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";

export type Database = ReturnType<typeof createDb>;

/** Drizzle over the D1 binding. Cheap to create; one per request is fine. */
export const createDb = (d1: D1Database) => drizzle(d1, { schema });

export { schema };
