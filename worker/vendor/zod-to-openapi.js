// "@asteasolutions/zod-to-openapi" for the Worker bundle (aliased in wrangler.toml): what
// @hono/zod-openapi calls at run time, without the package. The admin API's OpenAPI document is
// generated at build time instead (`npm run openapi` → public/admin/v1/openapi.json, served by the
// asset layer, built in Node with the real package and the same route schemas), so in the Worker
// the package's only work was bookkeeping for a document it never renders: its generators were
// 5.6 KB of the gzip bundle, and the registry and zod extension that stayed another 1.9 KB.
// Here `.openapi(...)` returns the schema itself (the package's returns a copy carrying the
// metadata, which only the document reads: parsing is the same), and the registry keeps its
// definitions in the same shape. Tests (vitest.config.ts aliases only zod) run the real package.
export class OpenAPIRegistry {
  constructor(parents) {
    this.parents = parents;
    this._definitions = [];
  }
  get definitions() {
    return [...(this.parents?.flatMap((p) => p._definitions) ?? []), ...this._definitions];
  }
  register(refId, schema) {
    this._definitions.push({ type: "schema", schema });
    return schema;
  }
  registerParameter(refId, schema) {
    this._definitions.push({ type: "parameter", schema });
    return schema;
  }
  registerPath(route) {
    this._definitions.push({ type: "route", route });
  }
  registerWebhook(webhook) {
    this._definitions.push({ type: "webhook", webhook });
  }
  registerComponent(componentType, name, component) {
    this._definitions.push({ type: "component", componentType, name, component });
    return { name, ref: { $ref: `#/components/${componentType}/${name}` } };
  }
}

export function extendZodWithOpenApi(zod) {
  zod.ZodType.prototype.openapi ??= function openapi() {
    return this;
  };
}

export const getOpenApiMetadata = () => ({});
export const getRefId = () => undefined;

class BuildTimeOnly {
  constructor() {
    throw new Error("The admin OpenAPI document is generated at build time: npm run openapi (public/admin/v1/openapi.json).");
  }
}
export { BuildTimeOnly as OpenApiGeneratorV3, BuildTimeOnly as OpenApiGeneratorV31, BuildTimeOnly as OpenApiGeneratorV32 };
