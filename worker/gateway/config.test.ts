import { describe, expect, it } from "vitest";
import { authorize } from "../../plugins/authorize";
import { rateLimit } from "../../plugins/rate-limit";
import { keyAuth } from "../../plugins/key-auth";
import shipped from "../../gateway.config";
import { defineGateway, GatewayConfigError } from "./config";
import { fromMiddleware, PluginConfigError } from "./plugin";

const upstreams = { api: { url: "https://api.example" } };

describe("defineGateway", () => {
  it("compiles the shipped gateway.config.ts", () => {
    expect(shipped.routes.map((r) => r.name)).toContain("demo-read");
    expect(shipped.routes[0]!.plugins.map((p) => p.name)).toEqual(["audit", "key-auth", "authorize", "rate-limit"]);
  });

  it("names the route and field of each error", () => {
    const attempt = () =>
      defineGateway({
        upstreams,
        plugins: [keyAuth(), authorize()],
        routes: [
          { name: "orders", path: "/orders/*", upstream: "nope", permission: "orders:read" },
          { name: "billing", path: "/billing/*", upstream: "api" },
          { name: "bad-path", path: "orders/../x", upstream: "api", permission: "a:b" },
        ],
      });
    expect(attempt).toThrow(GatewayConfigError);
    expect(attempt).toThrow(/routes\[0\]\.upstream \(route "orders"\): unknown upstream "nope"/);
    expect(attempt).toThrow(/routes\[1\]\.permission \(route "billing"\): required when the authorize plugin runs/);
    expect(attempt).toThrow(/routes\[2\]\.path \(route "bad-path"\)/);
  });

  it("refuses a permission that nothing enforces (no authorize on the route)", () => {
    const attempt = (routes: Parameters<typeof defineGateway>[0]["routes"]) => () => defineGateway({ upstreams, plugins: [keyAuth(), authorize()], routes });
    expect(attempt([{ name: "open", path: "/open/*", upstream: "api", permission: "a:b", disablePlugins: ["authorize"] }])).toThrow(
      /routes\[0\]\.permission \(route "open"\): nothing enforces it: the authorize plugin does not run on this route/,
    );
    expect(() => defineGateway({ upstreams, plugins: [keyAuth()], routes: [{ name: "r", path: "/r/*", upstream: "api", permission: "a:b" }] })).toThrow(/nothing enforces it/);
    // A public route says so by having no permission.
    expect(attempt([{ name: "open", path: "/open/*", upstream: "api", disablePlugins: ["key-auth", "authorize"] }])).not.toThrow();
  });

  it("refuses one limit name declared with two different counters; the same limit on several routes is fine", () => {
    const routes = (second: ReturnType<typeof rateLimit>) => [
      { name: "a", path: "/a/*", upstream: "api", permission: "a:b" },
      { name: "search", path: "/search/*", upstream: "api", permission: "a:b", plugins: [second] },
    ];
    const load = (second: ReturnType<typeof rateLimit>) => () => defineGateway({ upstreams, plugins: [keyAuth(), authorize(), rateLimit({ limit: 600, window: "1m" })], routes: routes(second) });
    expect(load(rateLimit({ limit: 2, window: "10s", by: ["user", "route"] }))).toThrow(
      /routes\[1\]\.plugins \(route "search"\): limit "rate" is declared with other limit, windowMs, by than on route "a": one name is one counter/,
    );
    // Per-route settings that do not change the counter may differ (a dry run on one route).
    expect(load(rateLimit({ limit: 600, window: "1m", dryRun: true, timeoutMs: 200 }))).not.toThrow();
    expect(load(rateLimit({ name: "search", limit: 2, window: "10s" }))).not.toThrow();
  });

  it("rejects unsafe upstream URLs and unknown fields", () => {
    expect(() => defineGateway({ upstreams: { x: { url: "ftp://files.example" } }, routes: [{ name: "r", path: "/r/*", upstream: "x" }] })).toThrow(/upstreams\.x\.url/);
    expect(() => defineGateway({ upstreams: { x: { url: "https://u:p@api.example" } }, routes: [{ name: "r", path: "/r/*", upstream: "x" }] })).toThrow(/credentials/);
    expect(() => defineGateway({ upstreams: { x: { url: "https://api.example", idleTimeoutMs: 0 } }, routes: [{ name: "r", path: "/r/*", upstream: "x" }] })).toThrow(/upstreams\.x\.idleTimeoutMs/);
    expect(defineGateway({ upstreams: { x: { url: "https://api.example", idleTimeoutMs: 15_000 } }, routes: [{ name: "r", path: "/r/*", upstream: "x" }] }).upstreams.get("x")?.idleTimeoutMs).toBe(15_000);
    expect(() => defineGateway({ upstreams, routes: [{ name: "r", path: "/r/*", upstream: "api", extra: 1 } as never] })).toThrow(/extra/);
  });

  it("fails at load, naming the route, plugin and field, when a plugin's options are invalid", () => {
    // The factory records the problem (it runs inside the routes literal, before the route is
    // known); defineGateway reports it with the route's name and refuses to load.
    const bad = keyAuth({ headers: ["cookie" as never] });
    expect(bad.configIssues?.[0]?.path).toEqual(["headers", 0]);
    expect(() => defineGateway({ upstreams, plugins: [bad], routes: [{ name: "r", path: "/r", upstream: "api" }] })).toThrow(GatewayConfigError);
    expect(() => defineGateway({ upstreams, plugins: [bad], routes: [{ name: "r", path: "/r", upstream: "api" }] })).toThrow(/gateway\.plugins\[0\]\.headers\[0\] \(plugin "key-auth"\)/);
    expect(() =>
      defineGateway({ upstreams, plugins: [keyAuth()], routes: [{ name: "r", path: "/r", upstream: "api", permission: "a:b", plugins: [authorize({ groups: [] })] }] }),
    ).toThrow(/gateway\.routes\[0\]\.plugins\[0\]\.groups \(route "r", plugin "authorize"\)/);
    expect(new PluginConfigError("x", "a: b").message).toBe('plugin "x": invalid options: a: b');
  });

  it("builds chains: global order, route override in place, disabled plugins skipped", () => {
    const g = defineGateway({
      upstreams,
      plugins: [keyAuth(), authorize()],
      routes: [
        { name: "a", path: "/a/*", upstream: "api", permission: "a:read" },
        { name: "b", path: "/b/*", upstream: "api", permission: "b:read", plugins: [authorize({ groups: ["internal"] })] },
        { name: "c", path: "/c", upstream: "api", disablePlugins: ["key-auth", "authorize"] },
      ],
    });
    const [a, b, c] = g.routes;
    expect(a!.plugins.map((p) => p.name)).toEqual(["key-auth", "authorize"]);
    expect(b!.plugins.map((p) => p.name)).toEqual(["key-auth", "authorize"]);
    expect(b!.plugins[1]).not.toBe(a!.plugins[1]);
    expect(c!.plugins).toEqual([]);
    expect([...a!.methods]).toEqual(["GET", "HEAD"]);
    expect(c!.wildcard).toBe(false);
    expect(a!.prefix).toBe("/a");
  });

  it("clears identity headers only on routes where a plugin may have set them (one without the leavesIdentityHeaders trait)", () => {
    const custom = fromMiddleware("custom", async (_c, next) => next());
    const g = defineGateway({
      upstreams: { x: { url: "https://api.example" } },
      plugins: [keyAuth(), authorize()],
      routes: [
        { name: "builtins", path: "/a/*", upstream: "x", permission: "a:read" },
        { name: "custom", path: "/b/*", upstream: "x", permission: "b:read", plugins: [custom] },
      ],
    });
    expect(g.routes.map((r) => [r.name, r.clearsIdentity])).toEqual([
      ["builtins", false],
      ["custom", true],
    ]);
  });
});
