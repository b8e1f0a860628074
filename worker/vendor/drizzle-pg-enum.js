// drizzle-orm's `isPgEnum` (node_modules/drizzle-orm/pg-core/columns/enum.js, drizzle-orm 0.45.4)
// without the rest of that module. drizzle's sql/sql.js imports it to tell a Postgres enum from
// other SQL chunks, and the module's Postgres column classes (and through them pg-core's column
// base, foreign keys, unique and primary keys, array helpers) have static class fields a bundler
// must keep: 5.9 KB of the Worker bundle minified for a SQLite gateway that has no Postgres enum.
// wrangler.toml aliases sql.js's import specifier to this file (wrangler matches it exactly).
// When upgrading drizzle-orm, compare with the original: it is the same three lines.
const isPgEnumSym = Symbol.for("drizzle:isPgEnum");
export function isPgEnum(obj) {
  return !!obj && typeof obj === "function" && isPgEnumSym in obj && obj[isPgEnumSym] === true;
}
