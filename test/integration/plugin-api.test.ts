import { describe, expect, it } from "vitest";
import { basicAuth } from "hono/basic-auth";
import { audit } from "../../plugins/audit";
import { authorize } from "../../plugins/authorize";
import { cors } from "../../plugins/cors";
import { keyAuth } from "../../plugins/key-auth";
import { requestLimits } from "../../plugins/request-limits";
import { defineGateway, GatewayConfigError } from "../../worker/gateway/config";
import { bagSlot, defineErrorCodes, definePlugin, fromMiddleware, GatewayError, waitUntil, z } from "../../worker/plugin-api";
import { env } from "cloudflare:test";
import { expectProblem, json, originRecords, seedCaller, testGateway, textOf, unique } from "../helpers";
import { testUpstreams } from "../fixtures/upstreams";
import { eventsFor } from "../audit-helpers";

/** Appends its label to x-order on the way in (origin sees it) and to x-order-out on the way back. */
const makeTrace = (name: string) =>
  definePlugin({
    name,
    config: z.strictObject({ label: z.string().min(1).describe("Label to append") }),
    create: ({ label }) =>
      async function trace(c, next) {
        const seen = c.var.upstreamHeaders.get("x-order");
        c.var.upstreamHeaders.set("x-order", seen ? `${seen},${label}` : label);
        await next();
        const out = c.res.headers.get("x-order-out");
        c.res.headers.set("x-order-out", out ? `${out},${label}` : label);
      },
  });
const trace = makeTrace("trace");
const trace2 = makeTrace("trace-two");

const errors = defineErrorCodes({ TEAM_HEADER_REQUIRED: { status: 428, title: "An X-Team header is required" } });
const team = bagSlot<string>("require-team.team");
const requireTeam = definePlugin({
  name: "require-team",
  config: z.strictObject({}),
  create: () =>
    async function requireTeam(c, next) {
      const t = c.req.header("x-team");
      if (!t) throw errors.error("TEAM_HEADER_REQUIRED", "Send X-Team.");
      team.set(c, t);
      await next();
    },
});
const showContext = definePlugin({
  name: "show-context",
  config: z.strictObject({ after: z.string().optional().describe("Marker for the after-response call") }),
  create: ({ after }) =>
    async function showContext(c, next) {
      c.var.upstreamHeaders.set("x-ctx-ip", c.var.clientIp ?? "none");
      c.var.upstreamHeaders.set("x-ctx-team", team.get(c) ?? "none");
      c.var.upstreamHeaders.set("x-ctx-route", c.var.route.name);
      c.var.upstreamHeaders.set("x-ctx-upstream", c.var.upstream.name);
      c.var.upstreamHeaders.set("x-ctx-user", c.var.identity?.user.id ?? "anonymous");
      c.var.upstreamHeaders.set("x-ctx-request", c.var.requestId);
      await next();
      // After the response: a call the client never waits for.
      if (after) waitUntil(c, fetch(`${env.TEST_ORIGIN_URL}/after/${after}?status=${c.res.status}`));
    },
});

describe("plugin API: config load", () => {
  it("names the route, the plugin and the field of an invalid plugin option", () => {
    let error: unknown;
    try {
      defineGateway({
        upstreams: testUpstreams,
        plugins: [keyAuth(), authorize()],
        routes: [
          { name: "fine", path: "/fine/*", upstream: "echo", permission: "x:read" },
          // @ts-expect-error groups must be a string array: TypeScript catches this before zod does
          { name: "broken", path: "/broken/*", upstream: "echo", permission: "x:read", plugins: [authorize({ groups: [42] })] },
        ],
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(GatewayConfigError);
    expect((error as Error).message).toMatch(/gateway\.routes\[1\]\.plugins\[0\]\.groups\[0\] \(route "broken", plugin "authorize"\): .*string/i);
  });

  it("names a global plugin and its field", () => {
    // @ts-expect-error headers only accepts "authorization" | "x-api-key"
    const bad = keyAuth({ headers: ["cookie"] });
    expect(() => defineGateway({ upstreams: testUpstreams, plugins: [bad], routes: [{ name: "r", path: "/r", upstream: "echo" }] })).toThrow(
      /gateway\.plugins\[0\]\.headers\[0\] \(plugin "key-auth"\)/,
    );
  });

  it("refuses authorize without an authenticator before it, and a plugin listed twice", () => {
    expect(() => defineGateway({ upstreams: testUpstreams, plugins: [authorize()], routes: [{ name: "r", path: "/r", upstream: "echo", permission: "a:b" }] })).toThrow(
      /route "r"\): authorize runs before any authenticator/,
    );
    expect(() =>
      defineGateway({ upstreams: testUpstreams, plugins: [keyAuth(), keyAuth()], routes: [{ name: "r", path: "/r", upstream: "echo" }] }),
    ).toThrow(/plugin "key-auth" appears twice/);
  });

  it("refuses a wildcard or empty required permission list", () => {
    expect(() =>
      defineGateway({ upstreams: testUpstreams, plugins: [keyAuth(), authorize()], routes: [{ name: "r", path: "/r", upstream: "echo", permission: { anyOf: [] } }] }),
    ).toThrow(/routes\[0\]\.permission/);
    expect(() =>
      defineGateway({ upstreams: testUpstreams, plugins: [keyAuth(), authorize()], routes: [{ name: "r", path: "/r", upstream: "echo", permission: { allOf: ["a:*"] } }] }),
    ).toThrow(/literal/);
  });

  it("an invalid instance used outside defineGateway refuses requests instead of running unchecked", async () => {
    // @ts-expect-error label is required
    const instance = trace({});
    expect(instance.configIssues?.[0]?.path).toEqual(["label"]);
    await expect(instance.handler({} as never, async () => {})).rejects.toBeInstanceOf(GatewayError);
  });
});

describe("plugin API: chain", () => {
  const fetchGw = testGateway({
    plugins: [trace({ label: "g1" }), trace2({ label: "g2" })],
    routes: [
      { name: "plain", path: "/plain/*", upstream: "echo" },
      { name: "override", path: "/override/*", upstream: "echo", plugins: [trace({ label: "route-g1" }), requireTeam()] },
      { name: "disabled", path: "/disabled/*", upstream: "echo", disablePlugins: ["trace"] },
      {
        name: "context",
        path: "/context/*",
        upstream: "echo",
        disablePlugins: ["trace", "trace-two"],
        plugins: [keyAuth(), requireTeam(), showContext({ after: "ctx-after" })],
      },
    ],
  });

  it("runs plugins in declared order on the way in and in reverse on the way out", async () => {
    const marker = unique("order");
    const res = await fetchGw(`/plain/${marker}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-order-out")).toBe("g2,g1");
    const [rec] = await originRecords(marker);
    expect(rec!.headers["x-order"]).toBe("g1,g2");
  });

  it("a route plugin with a global plugin's name replaces it in place; others are appended", async () => {
    const marker = unique("override");
    const res = await fetchGw(`/override/${marker}`, { headers: { "x-team": "blue" } });
    expect(res.status).toBe(200);
    const [rec] = await originRecords(marker);
    expect(rec!.headers["x-order"]).toBe("route-g1,g2");
  });

  it("disablePlugins skips a global plugin on that route only", async () => {
    const marker = unique("disabled");
    await fetchGw(`/disabled/${marker}`);
    const [rec] = await originRecords(marker);
    expect(rec!.headers["x-order"]).toBe("g2");
  });

  it("a plugin's custom error code is a problem+json and nothing reaches the origin", async () => {
    const marker = unique("reject");
    const body = await expectProblem(await fetchGw(`/override/${marker}`), 428, "TEAM_HEADER_REQUIRED");
    expect(body.detail).toBe("Send X-Team.");
    expect(await originRecords(marker)).toEqual([]);
  });

  it("gives plugins a typed context: client IP from CF-Connecting-IP only, identity, route, upstream, bag; and runs waitUntil work after the response", async () => {
    const { key, user } = await seedCaller();
    const marker = unique("ctx");
    const res = await fetchGw(`/context/${marker}`, {
      ip: "203.0.113.9",
      headers: { authorization: `Bearer ${key}`, "x-team": "red", "x-forwarded-for": "6.6.6.6", "x-real-ip": "6.6.6.6" },
    });
    expect(res.status).toBe(200);
    const [rec] = await originRecords(marker);
    expect(rec!.headers).toMatchObject({
      "x-ctx-ip": "203.0.113.9",
      "x-forwarded-for": "203.0.113.9",
      "x-ctx-team": "red",
      "x-ctx-route": "context",
      "x-ctx-upstream": "echo",
      "x-ctx-user": user.id,
      "x-ctx-request": res.headers.get("x-request-id"),
    });
    expect(rec!.headers["x-real-ip"]).toBeUndefined();
    const after = await originRecords("/after/ctx-after?status=200");
    expect(after.length).toBeGreaterThanOrEqual(1);
    expect(await json(res)).toHaveProperty("url");
  });
});

describe("plugin API: the main test gateway", () => {
  it("serves a route whose permission is { anyOf } (the config shape the fixture documents)", async () => {
    const { gw } = await import("../helpers");
    const auditor = await seedCaller({ permissions: ["echo:audit"] });
    expect((await gw(`/any-of/${unique("m")}`, { headers: { "x-api-key": auditor.key } })).status).toBe(200);
    const other = await seedCaller({ permissions: ["echo:write"] });
    await expectProblem(await gw(`/any-of/${unique("m")}`, { headers: { "x-api-key": other.key } }), 403, "FORBIDDEN");
  });
});

describe("plugin API: a plugin that refuses after the origin answered", () => {
  const refuseAfter = definePlugin({
    name: "refuse-after",
    config: z.strictObject({}),
    create: () =>
      async function refuseAfter(_c, next) {
        await next();
        throw new GatewayError("FORBIDDEN", "Refused on the way back.");
      },
  });
  const fetchGw = testGateway({ plugins: [], routes: [{ name: "refuse-after", path: "/refuse-after/*", upstream: "echo", plugins: [refuseAfter()] }] });

  it("answers a clean problem: its own length and type, none of the origin's headers", async () => {
    const res = await fetchGw("/refuse-after/x", { headers: { "x-test-marker": unique("refuse-after") } });
    const body = await res.text();
    expect(res.status).toBe(403);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(res.headers.get("content-length")).toBe(String(new TextEncoder().encode(body).byteLength));
    // The echo origin tags its answers with x-origin; the problem must not carry it.
    expect(res.headers.get("x-origin")).toBeNull();
    expect(JSON.parse(body)).toMatchObject({ code: "FORBIDDEN", detail: "Refused on the way back." });
  });
});


describe("plugin API: a plugin that throws something other than an Error", () => {
  const throwsString = definePlugin({
    name: "throws-string",
    config: z.strictObject({}),
    create: () =>
      async function throwsString() {
        // eslint-disable-next-line no-throw-literal -- what a careless custom plugin does
        throw "not an Error";
      },
  });
  const fetchGw = testGateway({
    plugins: [audit({ sink: "d1", flushIntervalMs: 50 })],
    routes: [{ name: "throws-string", path: "/throws-string/*", upstream: "echo", plugins: [throwsString()] }],
  });

  it("answers a 500 INTERNAL problem with the request id, audited as that plugin's refusal; nothing reaches the origin", async () => {
    const marker = unique("throws-string");
    // Without the wrap the thrown string escaped Hono's error handler and the fetch itself failed.
    const body = await expectProblem(await fetchGw(`/throws-string/${marker}`), 500, "INTERNAL");
    expect(body.detail).toBe("An unexpected error occurred.");
    expect(await originRecords(marker)).toEqual([]);
    const [event] = await eventsFor(marker, 1);
    expect(event).toMatchObject({ decision: "refused", decided_by: "throws-string", status: 500 });
  });
});

describe("plugin API: a plugin that answers without calling next", () => {
  // What a caching or mirroring plugin does: answer with a Response of its own making. One from
  // fetch() (or caches.default.match()) has immutable headers.
  const answersItself = definePlugin({
    name: "answers-itself",
    config: z.strictObject({}),
    create: () =>
      async function answersItself(c) {
        return fetch(`${env.TEST_ORIGIN_URL}/answered-by-plugin/${c.req.header("x-test-marker")}`);
      },
  });
  const fetchGw = testGateway({
    plugins: [cors({ origins: ["https://app.example.com"] }), trace({ label: "outer" })],
    routes: [{ name: "answers-itself", path: "/answers-itself/*", upstream: "echo", plugins: [answersItself()] }],
  });

  it("its response reaches the client with the steps outside it applied (CORS, the request id, their edits); the route's upstream is never called", async () => {
    const marker = unique("answers-itself");
    const res = await fetchGw(`/answers-itself/${marker}`, { headers: { origin: "https://app.example.com", "x-test-marker": marker } });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe("https://app.example.com");
    expect(res.headers.get("x-order-out")).toBe("outer");
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
    // Hop-by-hop headers of the fetched answer are stripped, as on an origin's response.
    expect(res.headers.get("x-origin-hop")).toBeNull();
    expect((await json(res)).url).toBe(`/answered-by-plugin/${marker}`);
    // Only the plugin's own fetch reached the origin, not the route's forward.
    expect((await originRecords(marker)).map((r) => r.url)).toEqual([`/answered-by-plugin/${marker}`]);
  });
});

describe("plugin API: a plugin that reads the request body the Hono way", () => {
  // What a body check does, e.g. Hono's validator through fromMiddleware: c.req.json().
  const needsOrderId = definePlugin({
    name: "needs-order-id",
    config: z.strictObject({}),
    create: () =>
      async function needsOrderId(c, next) {
        const body = (await c.req.json()) as { orderId?: unknown };
        if (typeof body.orderId !== "string") throw new GatewayError("BAD_REQUEST", "orderId is required.");
        await next();
      },
  });
  // One that reads the Request itself, past Hono: nothing is left to forward.
  const readsRaw = definePlugin({
    name: "reads-raw",
    config: z.strictObject({}),
    create: () =>
      async function readsRaw(c, next) {
        await c.req.raw.text();
        await next();
      },
  });
  const fetchGw = testGateway({
    plugins: [],
    routes: [
      { name: "reads-json", path: "/reads-json/*", methods: ["POST"], upstream: "echo", plugins: [needsOrderId()] },
      { name: "limited-reads-json", path: "/limited-reads-json/*", methods: ["POST"], upstream: "echo", plugins: [requestLimits({ maxBodyBytes: 1024 }), needsOrderId()] },
      { name: "reads-raw", path: "/reads-raw/*", methods: ["POST"], upstream: "echo", plugins: [readsRaw()] },
    ],
  });
  const sent = '{ "orderId": "ord_1",\n  "note": "caf\u00e9" }';

  it("the origin still gets the body, byte for byte (also after request-limits counted it)", async () => {
    for (const route of ["reads-json", "limited-reads-json"]) {
      const marker = unique(route);
      const res = await fetchGw(`/${route}/${marker}`, { method: "POST", headers: { "content-type": "application/json" }, body: sent });
      expect(res.status, route).toBe(200);
      const [rec] = await originRecords(marker);
      expect(textOf(rec!.bodyBase64)).toBe(sent);
    }
    await expectProblem(await fetchGw(`/reads-json/${unique("m")}`, { method: "POST", body: "{}" }), 400, "BAD_REQUEST");
  });

  it("a body consumed with nothing to forward is the gateway's fault, not the origin's (500, never 502 UPSTREAM_UNAVAILABLE)", async () => {
    const marker = unique("reads-raw");
    const body = await expectProblem(await fetchGw(`/reads-raw/${marker}`, { method: "POST", body: "x" }), 500, "GATEWAY_MISCONFIGURED");
    expect(body.detail).toContain("forward.body");
    expect(await originRecords(marker)).toEqual([]);
  });
});

describe("plugin API: a Hono middleware that refuses with an HTTPException", () => {
  const fetchGw = testGateway({
    plugins: [audit({ sink: "d1", flushIntervalMs: 20 })],
    routes: [{ name: "hono-basic", path: "/hono-basic/*", upstream: "echo", plugins: [fromMiddleware("basic-auth", basicAuth({ username: "ops", password: "s3cret-pass" }))] }],
  });

  it("gives a proxy-route problem with the middleware's challenge, not the admin API's 401", async () => {
    const marker = unique("hono-basic");
    const res = await fetchGw(`/hono-basic/${marker}`);
    const body = await expectProblem(res, 401, "KEY_INVALID");
    expect(body.title).not.toMatch(/admin/i);
    // The challenge is what makes a browser or client ask for credentials.
    expect(res.headers.get("www-authenticate")).toBe('Basic realm="Secure Area"');
    expect(await originRecords(marker)).toEqual([]);
    // Audited under the code the client got (it was HTTP_401, a code no client ever saw).
    const [event] = await eventsFor(marker, 1);
    expect(event).toMatchObject({ decision: "refused", decided_by: "basic-auth", code: "KEY_INVALID", status: 401 });
    expect((await fetchGw(`/hono-basic/${unique("m")}`, { headers: { authorization: `Basic ${btoa("ops:s3cret-pass")}` } })).status).toBe(200);
  });
});
