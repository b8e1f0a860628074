import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { adminSchemas } from "../../worker/admin/schemas";
import { problemSchema } from "../../worker/errors";
import { expectProblem, gw } from "../helpers";

// The admin API and dashboard are built on their first request (worker/app.ts, `subApp`), so an
// isolate that only proxies never pays for their routes and zod schemas (bench/README.md,
// "Start-up"). This file must make no admin or dashboard request before the test below: each
// test file runs in a workerd of its own, so nothing earlier has built them.
describe("admin API and dashboard built on first use", () => {
  it("serves proxy traffic and problems without building them, and builds them on the first admin request", async () => {
    expect(adminSchemas.built).toBe(false);
    expect((await gw("/healthz")).status).toBe(200);
    await expectProblem(await gw("/no-such-route"), 404, "NOT_FOUND");
    await expectProblem(await gw("/echo/anything", { headers: { authorization: "Bearer pcl_not_a_real_key" } }), 401, "KEY_INVALID");
    expect(adminSchemas.built).toBe(false);
    // Problem responses are rendered without the OpenAPI document's schema of them.
    expect(problemSchema.built).toBe(false);

    const res = await gw("/admin/v1/roles", { headers: { authorization: `Bearer ${env.ADMIN_TOKEN}` } });
    expect(res.status).toBe(200);
    expect(adminSchemas.built).toBe(true);
    expect(problemSchema.built).toBe(true);
  });
});
