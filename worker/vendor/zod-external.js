// zod's `z` namespace (node_modules/zod/v4/classic/external.js, zod 4.6.7) with two changes: the
// locales namespace holds English only, and the ahead-of-time compiler (`compile`, `withParser`,
// `INVALID`, `ZodCompile*Error`) and `fromJSONSchema` are left out, and `toJSONSchema` is the
// stub in zod-json-schema.js — the gateway uses none of them. @hono/zod-openapi hands `z` as a value to extendZodWithOpenApi, so a bundler cannot
// tree-shake any of it: the other ~40 locales were 258 KB of the Worker's 846 KB bundle
// (minified), the compiler and the JSON-schema reader another 41 KB, all loaded and parsed by
// every new isolate.
// wrangler.toml aliases "zod" to ./zod.js; keep this list in step with zod's external.js when
// upgrading zod (scripts/check-bundle.mjs fails the build if the bundle regrows).
export * as core from "./zod-core.js";
export * from "../../node_modules/zod/v4/classic/schemas.js";
export * from "../../node_modules/zod/v4/classic/checks.js";
export * from "../../node_modules/zod/v4/classic/errors.js";
export * from "../../node_modules/zod/v4/classic/parse.js";
export * from "../../node_modules/zod/v4/classic/compat.js";
export { globalRegistry, registry, config, memoizer, $output, $input, $brand, clone, regexes, treeifyError, prettifyError, formatError, flattenError, TimePrecision, util, NEVER, toZod, getDiscriminatedOption } from "./zod-core.js";
export { toJSONSchema } from "./zod-json-schema.js";
export { deepPartial } from "../../node_modules/zod/v4/classic/deep-partial.js";
export { input, output } from "../../node_modules/zod/v4/classic/in-out.js";
export * as locales from "./zod-locales.js";
export { ZodISODateTime, ZodISODate, ZodISOTime, ZodISODuration } from "../../node_modules/zod/v4/classic/iso.js";
export * as iso from "../../node_modules/zod/v4/classic/iso.js";
export * as coerce from "../../node_modules/zod/v4/classic/coerce.js";
