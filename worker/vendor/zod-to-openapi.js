// "@asteasolutions/zod-to-openapi" for the Worker bundle (aliased in wrangler.toml): the registry
// and the zod extension @hono/zod-openapi needs to register and validate routes, without the
// document generators. The admin API's OpenAPI document is generated at build time instead
// (`npm run openapi` → public/admin/v1/openapi.json, served by the asset layer): the generators
// were 5.6 KB of the Worker's gzip bundle for a document that never changes between deploys.
// @hono/zod-openapi names them as values, so a bundler cannot drop them without this module.
export { OpenAPIRegistry, extendZodWithOpenApi, getOpenApiMetadata, getRefId } from "../../node_modules/@asteasolutions/zod-to-openapi/dist/index.mjs";

class BuildTimeOnly {
  constructor() {
    throw new Error("The admin OpenAPI document is generated at build time: npm run openapi (public/admin/v1/openapi.json).");
  }
}
export { BuildTimeOnly as OpenApiGeneratorV3, BuildTimeOnly as OpenApiGeneratorV31, BuildTimeOnly as OpenApiGeneratorV32 };
