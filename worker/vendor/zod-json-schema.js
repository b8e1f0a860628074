// zod's JSON Schema generator (node_modules/zod/v4/core/to-json-schema.js and
// json-schema-processors.js, zod 4.6.7) for the Worker bundle: left out. Every classic schema
// class names a processor and `toJSONSchema`, so a bundler keeps all of it (19 KB minified,
// 6.1 KB gzip) although the Worker never calls it: nothing in the gateway, @hono/zod-openapi
// or the zod-to-openapi registry renders JSON Schema at run time, and the admin OpenAPI document
// is generated at build time (`npm run openapi`, with the real modules). wrangler.toml aliases
// the two relative imports of zod's classic/schemas.js to this file; zod-core.js and
// zod-external.js export it in place of `toJSONSchema` and the rest. Only `aggregateChecks`, which
// backs the schemas' `.minLength`, `.format`, `.isInt` (and similar) getters, is zod's own.
// (zod-to-openapi's generator builds its document without zod's, so `npm run openapi` is unaffected.)
// When upgrading zod: a processor added to classic/schemas.js fails the build until it is named
// below; a renamed import path would bring the generator back, which the bundle budget catches.
export { aggregateChecks } from "../../node_modules/zod/v4/core/json-schema-processors.js";

function buildTimeOnly() {
  throw new Error("zod's JSON Schema generator is not in the Worker bundle (worker/vendor/zod-json-schema.js)");
}
// schema.toJSONSchema(), schema["~standard"].jsonSchema.input()/.output(): the method exists and throws when called.
const method = () => buildTimeOnly;
export { method as createToJSONSchemaMethod, method as createStandardJSONSchemaMethod };
export {
  buildTimeOnly as toJSONSchema, buildTimeOnly as initializeContext, buildTimeOnly as handleUnrepresentable,
  buildTimeOnly as processSchema, buildTimeOnly as process, buildTimeOnly as extractDefs, buildTimeOnly as finalize,
};
// The processors each schema class names as its `_zod.processJSONSchema`: only processSchema calls them.
export {
  buildTimeOnly as stringProcessor, buildTimeOnly as numberProcessor,
  buildTimeOnly as booleanProcessor, buildTimeOnly as bigintProcessor,
  buildTimeOnly as symbolProcessor, buildTimeOnly as nullProcessor,
  buildTimeOnly as undefinedProcessor, buildTimeOnly as voidProcessor,
  buildTimeOnly as neverProcessor, buildTimeOnly as anyProcessor,
  buildTimeOnly as unknownProcessor, buildTimeOnly as dateProcessor,
  buildTimeOnly as enumProcessor, buildTimeOnly as literalProcessor, buildTimeOnly as nanProcessor,
  buildTimeOnly as templateLiteralProcessor, buildTimeOnly as fileProcessor,
  buildTimeOnly as successProcessor, buildTimeOnly as customProcessor,
  buildTimeOnly as functionProcessor, buildTimeOnly as transformProcessor,
  buildTimeOnly as mapProcessor, buildTimeOnly as setProcessor, buildTimeOnly as arrayProcessor,
  buildTimeOnly as objectProcessor, buildTimeOnly as unionProcessor,
  buildTimeOnly as intersectionProcessor, buildTimeOnly as tupleProcessor,
  buildTimeOnly as recordProcessor, buildTimeOnly as nullableProcessor,
  buildTimeOnly as nonoptionalProcessor, buildTimeOnly as defaultProcessor,
  buildTimeOnly as prefaultProcessor, buildTimeOnly as catchProcessor,
  buildTimeOnly as pipeProcessor, buildTimeOnly as readonlyProcessor,
  buildTimeOnly as promiseProcessor, buildTimeOnly as optionalProcessor,
  buildTimeOnly as lazyProcessor,
};
