import { describe, expect, it } from "vitest";
import { defineGateway } from "../../worker/gateway/config";
import { expectProblem, originRecords, seedCaller, testGateway, unique } from "../../test/helpers";
import { testUpstreams } from "../../test/fixtures/upstreams";
import { authorize } from "../authorize";
import { keyAuth } from "../key-auth";
import { cors } from "./index";

const APP = "https://app.example.test";
const fetchGw = testGateway({
  plugins: [cors({ origins: [APP, "http://localhost:5173"], credentials: true }), keyAuth(), authorize()],
  routes: [
    { name: "cors", path: "/cors/*", methods: ["GET", "POST"], upstream: "echo", permission: "echo:read" },
    { name: "cors-public", path: "/cors-public/*", upstream: "echo", permission: "echo:read", plugins: [cors({ origins: ["*"], rejectUnlisted: false })] },
    { name: "no-cors", path: "/no-cors/*", upstream: "echo", permission: "echo:read", disablePlugins: ["cors"] },
  ],
});

const preflight = (path: string, origin: string, method = "POST", headers = "content-type, x-api-key") =>
  fetchGw(path, { method: "OPTIONS", headers: { origin, "access-control-request-method": method, "access-control-request-headers": headers } });

describe("cors: the origin's own CORS headers", () => {
  // An origin that allows any Origin with credentials: on a cors route, the plugin's allow-list decides.
  const ownCorsGw = testGateway({
    plugins: [],
    routes: [
      { name: "cors-strict", path: "/cors-strict/*", upstream: "echo", plugins: [cors({ origins: [APP] })] },
      { name: "cors-lenient", path: "/cors-lenient/*", upstream: "echo", plugins: [cors({ origins: [APP], rejectUnlisted: false })] },
    ],
  });

  it("never reach the browser: a listed origin gets only the plugin's (no credentials when it allows none), an unlisted one none", async () => {
    const listed = await ownCorsGw(`/cors-strict/__cors-reflect/${unique("m")}`, { headers: { origin: APP } });
    expect(listed.status).toBe(200);
    expect(listed.headers.get("access-control-allow-origin")).toBe(APP);
    expect(listed.headers.get("access-control-allow-credentials")).toBeNull();
    expect(listed.headers.get("access-control-expose-headers")).toBe("x-request-id");

    const unlisted = await ownCorsGw(`/cors-lenient/__cors-reflect/${unique("m")}`, { headers: { origin: "https://evil.example" } });
    expect(unlisted.status).toBe(200);
    expect(unlisted.headers.get("access-control-allow-origin")).toBeNull();
    expect(unlisted.headers.get("access-control-allow-credentials")).toBeNull();
    expect(unlisted.headers.get("access-control-expose-headers")).toBeNull();
  });
});

describe("cors: responses a cache may keep", () => {
  it("vary by Origin even when the request has none (or the origin is unlisted), and with \"*\" carry Allow-Origin: * for every request", async () => {
    // A browser keeps a response fetched without Origin (a navigation, an <img>) and hands it to a
    // later fetch() from a listed page: without Vary: Origin it reuses that copy, which lacks the
    // CORS headers, and the page's call fails.
    const server = await fetchGw(`/cors-public/${unique("m")}`, { headers: { "x-api-key": (await seedCaller()).key } });
    expect(server.status).toBe(200);
    expect(server.headers.get("access-control-allow-origin")).toBe("*");
    const cachingGw = testGateway({
      plugins: [],
      routes: [
        { name: "cors-listed", path: "/cors-listed/*", upstream: "echo", plugins: [cors({ origins: [APP] })] },
        { name: "cors-lenient", path: "/cors-lenient/*", upstream: "echo", plugins: [cors({ origins: [APP], rejectUnlisted: false })] },
      ],
    });
    const noOrigin = await cachingGw(`/cors-listed/${unique("m")}`);
    expect(noOrigin.status).toBe(200);
    expect(noOrigin.headers.get("vary")).toContain("Origin");
    expect(noOrigin.headers.get("access-control-allow-origin")).toBeNull();
    const unlisted = await cachingGw(`/cors-lenient/${unique("m")}`, { headers: { origin: "https://other.example" } });
    expect(unlisted.status).toBe(200);
    expect(unlisted.headers.get("vary")).toContain("Origin");
  });
});

describe("cors", () => {
  it("answers a preflight from a listed origin itself (204, nothing forwarded, no credentials needed)", async () => {
    const marker = unique("cors-pre");
    const res = await preflight(`/cors/${marker}`, APP);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(APP);
    expect(res.headers.get("access-control-allow-credentials")).toBe("true");
    expect(res.headers.get("access-control-allow-methods")).toBe("GET, POST, HEAD");
    expect(res.headers.get("access-control-allow-headers")).toBe("content-type, x-api-key");
    expect(res.headers.get("access-control-max-age")).toBe("600");
    expect(res.headers.get("vary")).toContain("Origin");
    expect(await originRecords(marker)).toEqual([]);
  });

  it("refuses preflights from unlisted origins, for unlisted methods or headers (403, nothing forwarded)", async () => {
    for (const res of [
      await preflight(`/cors/${unique("m")}`, "https://evil.example"),
      await preflight(`/cors/${unique("m")}`, `${APP}.evil.example`),
      await preflight(`/cors/${unique("m")}`, APP, "DELETE"),
      await preflight(`/cors/${unique("m")}`, APP, "POST", "x-custom-thing"),
    ]) {
      await expectProblem(res, 403, "CORS_ORIGIN_DENIED");
      expect(res.headers.get("access-control-allow-origin")).toBeNull();
    }
  });

  it("decorates actual requests from listed origins, including problem responses; refuses unlisted ones", async () => {
    const { key } = await seedCaller();
    const ok = await fetchGw(`/cors/${unique("m")}`, { headers: { origin: APP, "x-api-key": key } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("access-control-allow-origin")).toBe(APP);
    expect(ok.headers.get("access-control-expose-headers")).toBe("x-request-id");
    const unauth = await fetchGw(`/cors/${unique("m")}`, { headers: { origin: APP } });
    await expectProblem(unauth, 401, "KEY_INVALID");
    expect(unauth.headers.get("access-control-allow-origin")).toBe(APP);
    const marker = unique("cors-evil");
    const evil = await fetchGw(`/cors/${marker}`, { headers: { origin: "https://evil.example", "x-api-key": key } });
    await expectProblem(evil, 403, "CORS_ORIGIN_DENIED");
    expect(await originRecords(marker)).toEqual([]);
    // No Origin: not a browser cross-origin call, untouched.
    const server = await fetchGw(`/cors/${unique("m")}`, { headers: { "x-api-key": key } });
    expect(server.status).toBe(200);
    expect(server.headers.get("access-control-allow-origin")).toBeNull();
  });

  it('"*" without credentials answers any origin with a literal *; a route can disable cors', async () => {
    const res = await preflight(`/cors-public/${unique("m")}`, "https://anyone.example", "GET", "");
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
    await expectProblem(await preflight(`/no-cors/${unique("m")}`, APP, "GET", ""), 405, "METHOD_NOT_ALLOWED");
  });

  it("refuses a wildcard with credentials, non-origins, and cors after an authenticator, at load", () => {
    expect(cors({ origins: ["*"], credentials: true }).configIssues?.[0]?.message).toContain("cannot be combined with credentials");
    expect(cors({ origins: ["https://app.example.test/"] }).configIssues).toHaveLength(1);
    expect(cors({ origins: ["null"] }).configIssues).toHaveLength(1);
    expect(() =>
      defineGateway({
        upstreams: testUpstreams,
        plugins: [keyAuth(), authorize()],
        routes: [{ name: "late", path: "/late/*", upstream: "echo", permission: "echo:read", plugins: [cors({ origins: [APP] })] }],
      }),
    ).toThrow(/route "late"\): "cors" must run before "key-auth"/);
  });
});
