// docs/examples/require-header.test.ts — testing a plugin: a gateway of its own, in workerd, against the real origin.
import { describe, expect, it } from "vitest";
import { authorize } from "../../plugins/authorize";
import { keyAuth } from "../../plugins/key-auth";
import { expectProblem, originRecords, seedCaller, testGateway, unique } from "../../test/helpers";
import { requireHeader } from "./minimal-plugin";

const fetchGw = testGateway({
  plugins: [keyAuth(), authorize()],
  routes: [{ name: "needs-team", path: "/needs-team/*", upstream: "echo", permission: "echo:read", plugins: [requireHeader({ header: "X-Team", forward: false })] }],
});

describe("require-header", () => {
  it("refuses a request without the header; the origin never sees it", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("needs-team");
    await expectProblem(await fetchGw(`/needs-team/${marker}`, { headers: { "x-api-key": key } }), 400, "BAD_REQUEST");
    expect(await originRecords(marker)).toEqual([]);
  });

  it("passes a request with it, and strips it when forward is false", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("needs-team");
    expect((await fetchGw(`/needs-team/${marker}`, { headers: { "x-api-key": key, "x-team": "blue" } })).status).toBe(200);
    expect((await originRecords(marker))[0]!.headers["x-team"]).toBeUndefined();
  });

  it("reports bad options with the route, plugin and field at load", async () => {
    const { defineGateway } = await import("../../worker/gateway/config");
    const { testUpstreams } = await import("../../test/fixtures/upstreams");
    expect(() =>
      defineGateway({ upstreams: testUpstreams, routes: [{ name: "r", path: "/r", upstream: "echo", plugins: [requireHeader({ header: "bad header" })] }] }),
    ).toThrow(/gateway\.routes\[0\]\.plugins\[0\]\.header \(route "r", plugin "require-header"\)/);
  });
});
