// zod's core namespace (node_modules/zod/v4/core/index.js, zod 4.6.7) with English as its only
// locale, without the ahead-of-time compiler (compile.js), without `JSONSchemaGenerator`
// (json-schema-generator.js, 0.2 KB gzip; nothing here or in @hono/zod-openapi uses it) and with
// `toJSONSchema` and its helpers taken from the stub in zod-json-schema.js, for the
// same reason as zod-external.js: `z.core` is reachable from `z`, so its `locales`, `compile` and
// generator would ship in the bundle.
export * from "../../node_modules/zod/v4/core/core.js";
export * from "../../node_modules/zod/v4/core/parse.js";
export * from "../../node_modules/zod/v4/core/errors.js";
export * from "../../node_modules/zod/v4/core/schemas.js";
export * from "../../node_modules/zod/v4/core/memoizer.js";
export * from "../../node_modules/zod/v4/core/checks.js";
export * from "../../node_modules/zod/v4/core/versions.js";
export * as util from "../../node_modules/zod/v4/core/util.js";
export { toZod } from "../../node_modules/zod/v4/core/util.js";
export * as regexes from "../../node_modules/zod/v4/core/regexes.js";
export * as locales from "./zod-locales.js";
export * from "../../node_modules/zod/v4/core/registries.js";
export * from "../../node_modules/zod/v4/core/doc.js";
export * from "../../node_modules/zod/v4/core/api.js";
export { toJSONSchema, initializeContext, handleUnrepresentable, processSchema, process, extractDefs, finalize, createToJSONSchemaMethod, createStandardJSONSchemaMethod } from "./zod-json-schema.js";
export * as JSONSchema from "../../node_modules/zod/v4/core/json-schema.js";
