import { describe, expect, it } from "vitest";
import pluginsGuide from "../../docs/plugins.md?raw";
import exampleGateway from "../../docs/examples/gateway.config.example";

const examples = import.meta.glob("../../docs/examples/*.ts", { query: "?raw", import: "default", eager: true }) as Record<string, string>;

describe("docs/plugins.md", () => {
  const includes = [...pluginsGuide.matchAll(/<!-- include: (docs\/examples\/[\w.-]+) -->\n```ts\n([\s\S]*?)```/g)];

  it("includes every example file, each block identical to the file tsc checks", () => {
    expect(includes.map((m) => m[1]).sort()).toEqual(Object.keys(examples).map((k) => k.replace("../../", "")).sort());
    for (const [, file, block] of includes) expect(block, `${file} in docs/plugins.md is out of date`).toBe(examples[`../../${file}`]);
  });

  it("its example gateway config loads (so its chains obey the load-time rules)", () => {
    expect(exampleGateway.routes.map((r) => [r.name, r.plugins.map((p) => p.name)])).toEqual([
      ["orders-read", ["cors", "response-timing", "key-auth", "jwt-auth", "authorize", "request-limits"]],
      ["orders-write", ["cors", "response-timing", "key-auth", "jwt-auth", "authorize", "request-limits", "require-idempotency-key", "require-header"]],
      ["partner", ["response-timing", "key-auth", "authorize", "request-limits", "headers"]],
    ]);
    expect(exampleGateway.routes[1]!.authenticators).toEqual(["key-auth", "jwt-auth"]);
  });
});
