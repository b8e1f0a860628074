// "zod" for the Worker bundle (aliased in wrangler.toml): zod's own index.js over
// zod-external.js, which drops the locales the gateway never uses.
import * as z from "./zod-external.js";
export * from "./zod-external.js";
export { z, z as default };
