// "zod" for the Worker bundle (aliased in wrangler.toml): zod's own index.js over
// zod-external.js, which drops the locales (and the AOT compiler) the gateway never uses.
import * as z from "./zod-external.js";
export * from "./zod-external.js";
export { z, z as default };

// workerd forbids code generation from strings, so zod's JIT object parser never runs there;
// `jitless` says so up front: zod skips its `new Function` probe, and a Node evaluation of the
// bundle (bench/lib/bundle.mjs's start-up figure) measures what an isolate does, not a JIT compile.
z.config({ jitless: true });
