/**
 * The contract every built-in plugin (and the example custom plugin) must keep: its options
 * are documented; a rejection is RFC 9457 problem+json with a stable code and the request id;
 * a rejected request never reaches the origin; no secret (origin credential, stored origin
 * secret, the caller's own key or token) appears in any response. Add a row to `contract`
 * for every new plugin.
 */
import { env } from "cloudflare:test";
import { SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { errorCatalog } from "../../worker/errors";
import type { PluginFactory } from "../../worker/plugin-api";
import type { z } from "@hono/zod-openapi";
import { authorize } from "../../plugins/authorize";
import { cors } from "../../plugins/cors";
import { headers } from "../../plugins/headers";
import { jwtAuth } from "../../plugins/jwt-auth";
import { keyAuth } from "../../plugins/key-auth";
import { requestLimits } from "../../plugins/request-limits";
import { requireIdempotencyKey } from "../../plugins/require-idempotency-key";
import { ADMIN, expectProblem, originRecords, ORIGIN_SECRET, seedCaller, testGateway, unique } from "../helpers";

const SECRET_NAME = unique("CONTRACT").replace(/[^A-Za-z0-9_]/g, "_");
const STORED_SECRET = `stored-origin-secret-${crypto.randomUUID()}`;
const APP = "https://app.example.test";

const fetchGw = testGateway({
  plugins: [cors({ origins: [APP] }), keyAuth(), jwtAuth({ algorithms: ["HS256"], secretFromEnv: "JWT_HS_SECRET" }), authorize()],
  routes: [
    { name: "c-auth", path: "/c-auth/*", methods: ["GET", "POST"], upstream: "echo", permission: "echo:read", plugins: [headers({ request: { set: { "x-token": `{secret:${SECRET_NAME}}` } } })] },
    { name: "c-missing", path: "/c-missing/*", upstream: "echo", permission: "echo:read", plugins: [headers({ request: { set: { "x-token": `{secret:${SECRET_NAME}_NONE}` } } })] },
    { name: "c-limits", path: "/c-limits/*", methods: ["POST"], upstream: "echo", permission: "echo:read", plugins: [requestLimits({ maxBodyBytes: 8 })] },
    { name: "c-idem", path: "/c-idem/*", methods: ["POST"], upstream: "echo", permission: "echo:read", plugins: [requireIdempotencyKey()] },
  ],
});

let key = "";
let token = "";
let unprivileged = "";
beforeAll(async () => {
  unprivileged = (await seedCaller({ permissions: ["billing:read"] })).key;
  const caller = await seedCaller({ permissions: ["echo:read"] });
  key = caller.key;
  token = await new SignJWT({ sub: caller.user.id }).setProtectedHeader({ alg: "HS256" }).setExpirationTime("5m").sign(new TextEncoder().encode(env.JWT_HS_SECRET));
  const put = await fetchGw(`/admin/v1/secrets/${SECRET_NAME}`, { method: "PUT", headers: { ...ADMIN, "content-type": "application/json" }, body: JSON.stringify({ value: STORED_SECRET }) });
  expect(put.status).toBe(200);
});

interface Case {
  plugin: Pick<PluginFactory<z.ZodType>, "pluginName" | "schema">;
  /** A request this plugin refuses (path gets a unique marker appended). */
  reject: () => { path: string; init: RequestInit };
  status: number;
  code: string;
}

const contract: Case[] = [
  { plugin: keyAuth, reject: () => ({ path: "/c-auth", init: { headers: { "x-api-key": `${key.slice(0, -3)}abc` } } }), status: 401, code: "KEY_INVALID" },
  { plugin: jwtAuth, reject: () => ({ path: "/c-auth", init: { headers: { authorization: `Bearer ${token.slice(0, -3)}abc` } } }), status: 401, code: "TOKEN_INVALID" },
  // A caller whose roles lack the route's permission.
  { plugin: authorize, reject: () => ({ path: "/c-auth", init: { headers: { "x-api-key": unprivileged } } }), status: 403, code: "FORBIDDEN" },
  { plugin: headers, reject: () => ({ path: "/c-missing", init: { headers: { "x-api-key": key } } }), status: 500, code: "GATEWAY_MISCONFIGURED" },
  { plugin: requestLimits, reject: () => ({ path: "/c-limits", init: { method: "POST", headers: { "x-api-key": key, "content-type": "text/plain" }, body: "123456789" } }), status: 413, code: "PAYLOAD_TOO_LARGE" },
  { plugin: cors, reject: () => ({ path: "/c-auth", init: { headers: { origin: "https://evil.example", "x-api-key": key } } }), status: 403, code: "CORS_ORIGIN_DENIED" },
  { plugin: requireIdempotencyKey, reject: () => ({ path: "/c-idem", init: { method: "POST", headers: { authorization: `Bearer ${token}` }, body: "{}" } }), status: 428, code: "IDEMPOTENCY_KEY_REQUIRED" },
];
const secretsIn = () => [ORIGIN_SECRET, STORED_SECRET, key, token, unprivileged, env.JWT_HS_SECRET, env.SECRETS_KEY, env.ADMIN_TOKEN];

describe.each(contract.map((c) => [c.plugin.pluginName, c] as const))("plugin contract: %s", (name, c) => {
  it("documents every option (description on each field)", () => {
    const shape = (c.plugin.schema as unknown as { shape?: Record<string, z.ZodType> }).shape;
    expect(shape, `${name}'s options must be a zod object`).toBeDefined();
    for (const [field, schema] of Object.entries(shape!)) expect(schema.description, `${name}.${field} needs .describe()`).toBeTruthy();
  });

  it("refuses with problem+json and a stable code, reaches no origin, leaks no secret", async () => {
    const { path, init } = c.reject();
    const marker = unique(`contract-${name}`);
    const res = await fetchGw(`${path}/${marker}`, init);
    const text = await res.clone().text();
    const body = await expectProblem(res, c.status, c.code);
    expect(body.code in errorCatalog || /^[A-Z_]+$/.test(body.code)).toBe(true);
    expect(body.type).toBe(`urn:portcullis:problem:${c.code.toLowerCase().replaceAll("_", "-")}`);
    expect(await originRecords(marker)).toEqual([]);
    const everything = text + JSON.stringify([...res.headers]);
    for (const s of secretsIn()) expect(everything).not.toContain(s);
  });
});

describe("plugin contract: successful responses", () => {
  it("carry no injected credential in any header, even from an origin that reflects them", async () => {
    for (const init of [{ headers: { "x-api-key": key, origin: APP } }, { headers: { authorization: `Bearer ${token}` } }] as RequestInit[]) {
      const res = await fetchGw(`/c-auth/__reflect/${unique("m")}`, init);
      expect(res.status).toBe(200);
      expect(res.headers.get("x-reflected-x-request-id")).toMatch(/^req_/); // the origin did reflect
      const all = JSON.stringify([...res.headers]);
      for (const s of secretsIn()) expect(all).not.toContain(s);
    }
  });
});

describe("plugin contract: every built-in has its folder", () => {
  const readmes = import.meta.glob("../../plugins/*/README.md", { query: "?raw", import: "default", eager: true }) as Record<string, string>;
  const tests = Object.keys(import.meta.glob("../../plugins/*/*.test.ts"));
  it.each(contract.map((c) => c.plugin.pluginName))("plugins/%s has index.ts, README.md (options, errors, example) and a test", (name) => {
    const readme = readmes[`../../plugins/${name}/README.md`];
    expect(readme, `plugins/${name}/README.md`).toBeDefined();
    expect(readme).toMatch(/## Options/);
    expect(readme).toMatch(/## Errors/);
    expect(readme).toMatch(/## Example/);
    expect(tests).toContain(`../../plugins/${name}/${name}.test.ts`);
  });
});
