#!/usr/bin/env node
// `npm run openapi`: writes the admin API's OpenAPI 3.1 document to public/admin/v1/openapi.json,
// which Cloudflare's asset layer serves at /admin/v1/openapi.json. The Worker does not generate
// it (worker/vendor/zod-to-openapi.js): this script builds worker/admin/openapi-document.ts for
// Node with the real generator and the same zod as the Worker. A test compares the committed
// file with what the route schemas produce, so a changed admin API fails CI until this is re-run
// (`npm run cli:types` runs it first, since the CLI's types come from the document).
import { build } from "esbuild";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const root = path.resolve(import.meta.dirname, "..");
export const OPENAPI_FILE = path.join(root, "public", "admin", "v1", "openapi.json");

/** The admin API's OpenAPI document, as the committed file holds it (two-space JSON, final newline). */
export async function renderAdminOpenApi() {
  const dir = await mkdtemp(path.join(tmpdir(), "pcl-openapi-"));
  try {
    const outfile = path.join(dir, "document.mjs");
    await build({
      entryPoints: [path.join(root, "worker/admin/openapi-document.ts")],
      outfile,
      bundle: true,
      format: "esm",
      platform: "node",
      alias: { zod: path.join(root, "worker/vendor/zod.js") },
      // The limiter's Durable Object base class is the runtime's; the document never touches it.
      plugins: [
        {
          name: "cloudflare-stub",
          setup(b) {
            b.onResolve({ filter: /^cloudflare:/ }, () => ({ path: "cloudflare", namespace: "stub" }));
            b.onLoad({ filter: /.*/, namespace: "stub" }, () => ({ contents: "export class DurableObject {}" }));
          },
        },
      ],
      logLevel: "error",
    });
    const { adminOpenApiDocument } = await import(pathToFileURL(outfile).href);
    return `${JSON.stringify(adminOpenApiDocument(), null, 2)}\n`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await mkdir(path.dirname(OPENAPI_FILE), { recursive: true });
  await writeFile(OPENAPI_FILE, await renderAdminOpenApi());
  console.log(`wrote ${path.relative(process.cwd(), OPENAPI_FILE)}`);
}
