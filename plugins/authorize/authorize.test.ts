import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { expectProblem, originRecords, seedCaller, unique } from "../../test/helpers";
import { createApp } from "../../worker/app";
import { defineGateway } from "../../worker/gateway/config";
import { keyAuth } from "../key-auth";
import { authorize } from ".";

const gateway = (routes: Parameters<typeof defineGateway>[0]["routes"], plugins = [keyAuth(), authorize()]) => {
  const app = createApp(defineGateway({ upstreams: { echo: { url: env.TEST_ORIGIN_URL } }, plugins, routes }));
  return (path: string, headers: Record<string, string> = {}) => app.request(`https://gw.test${path}`, { headers }, env);
};

describe("authorize plugin", () => {
  it("fails closed when no auth plugin identified the caller", async () => {
    const call = gateway([{ name: "open", path: "/open/*", upstream: "echo", permission: "echo:read", disablePlugins: ["key-auth"] }]);
    const m = unique("az");
    await expectProblem(await call(`/open/${m}`), 401, "KEY_INVALID");
    expect(await originRecords(m)).toHaveLength(0);
  });

  it("groups: only listed groups pass; users without a group are refused", async () => {
    const call = gateway([{ name: "g", path: "/g/*", upstream: "echo", permission: "echo:read", plugins: [authorize({ groups: ["internal", "ops"] })] }]);
    const ops = await seedCaller({ group: "ops" });
    const none = await seedCaller();
    expect((await call(`/g/${unique("az")}`, { "x-api-key": ops.key })).status).toBe(200);
    await expectProblem(await call(`/g/${unique("az")}`, { "x-api-key": none.key }), 403, "FORBIDDEN");
  });

  it("enforceIpAllowlist: false lets a route ignore the user's allowlist", async () => {
    const call = gateway([
      { name: "strict", path: "/strict/*", upstream: "echo", permission: "echo:read" },
      { name: "lax", path: "/lax/*", upstream: "echo", permission: "echo:read", plugins: [authorize({ enforceIpAllowlist: false })] },
    ]);
    const { key } = await seedCaller({ allowedIps: ["192.0.2.0/24"] });
    const from = { "x-api-key": key, "cf-connecting-ip": "198.51.100.1" };
    await expectProblem(await call(`/strict/${unique("az")}`, from), 403, "FORBIDDEN");
    expect((await call(`/lax/${unique("az")}`, from)).status).toBe(200);
  });

  it("says which permission was missing", async () => {
    const call = gateway([{ name: "w", path: "/w/*", upstream: "echo", permission: "echo:write" }]);
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const problem = await expectProblem(await call(`/w/${unique("az")}`, { "x-api-key": key }), 403, "FORBIDDEN");
    expect(problem.detail).toBe('This key does not grant "echo:write".');
  });
});
