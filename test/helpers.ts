import { createExecutionContext, env, SELF, waitOnExecutionContext } from "cloudflare:test";
import { expect } from "vitest";
import { adminOpenApiDocument } from "../worker/admin/openapi-document";
import { createApp } from "../worker/app";
import { defineGateway } from "../worker/gateway/config";
import { testUpstreams } from "./fixtures/upstreams";

export const ADMIN = { authorization: `Bearer ${env.ADMIN_TOKEN}` };

/**
 * The admin API's OpenAPI document as the route schemas generate it (the pool builds without the
 * Worker's generator stub). The asset layer serves the committed copy, which
 * test/integration/admin-api.test.ts checks against this, so tests of the document use this one.
 */
export const adminDoc = (): any => JSON.parse(JSON.stringify(adminOpenApiDocument()));

/**
 * A request to the worker under test (workerd), as a client would send it, with the response
 * body read to the end as a client would (see `readToEnd`). Use `gwStream` to hold the body open.
 */
export async function gw(path: string, init: RequestInit = {}): Promise<Response> {
  return readToEnd(await gwStream(path, init));
}

/** Like `gw`, but the response body is left unread: the test decides how much of it to take. */
export function gwStream(path: string, init: RequestInit = {}): Promise<Response> {
  return SELF.fetch(`https://gateway.test${path}`, { redirect: "manual", ...init });
}

/**
 * The response with its body read to the end (or to the error that broke it, handed back as a
 * body that fails the same way). A streamed (length-less) response's audit event is recorded
 * when its body ends, as it is for a real client, which always reads or drops the body.
 */
export async function readToEnd(res: Response): Promise<Response> {
  let body: BodyInit | null = null;
  if (res.body) {
    try {
      body = await res.arrayBuffer();
    } catch (err) {
      body = new ReadableStream({ start: (controller) => controller.error(err) });
    }
  }
  return new Response(body, res);
}

/** An admin API call with the admin token and a JSON body. */
export function admin(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return gw(`/admin/v1${path}`, {
    method,
    headers: { ...ADMIN, ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

export async function json<T = any>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

/** Asserts an RFC 9457 problem with the given status and code, and returns its body. */
export async function expectProblem(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toBe("application/problem+json");
  const body = await json(res);
  expect(body).toMatchObject({ status, code, type: expect.any(String), title: expect.any(String), detail: expect.any(String) });
  expect(body.requestId).toMatch(/^req_[0-9a-f]{32}$/);
  expect(res.headers.get("x-request-id")).toBe(body.requestId);
  return body;
}

let counter = 0;
/** A name unique within the run, so tests sharing one D1 never collide. */
export const unique = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}${Math.random().toString(36).slice(2, 6)}`;

/** Creates a role, a user holding it and a key; returns all three (the key in plaintext). */
export async function seedCaller(opts: { permissions?: string[]; group?: string; allowedIps?: string[]; keyPermissions?: string[] } = {}) {
  const roleRes = await admin("POST", "/roles", { name: unique("role"), permissions: opts.permissions ?? ["echo:*"] });
  expect(roleRes.status).toBe(201);
  const role = await json(roleRes);
  const userRes = await admin("POST", "/users", {
    name: unique("user"),
    roles: [role.name],
    ...(opts.group ? { group: opts.group } : {}),
    ...(opts.allowedIps ? { allowedIps: opts.allowedIps } : {}),
  });
  expect(userRes.status).toBe(201);
  const user = await json(userRes);
  const keyRes = await admin("POST", `/users/${user.id}/keys`, opts.keyPermissions ? { permissions: opts.keyPermissions } : {});
  expect(keyRes.status).toBe(201);
  const key = await json(keyRes);
  return { role, user, key: key.key as string, keyId: key.id as string, keyView: key };
}

/** What the recording origin received whose raw URL contains `marker`. */
export async function originRecords(marker: string): Promise<Array<{ method: string; url: string; headers: Record<string, string>; bodyBase64: string }>> {
  const res = await fetch(`${env.TEST_ORIGIN_URL}/__records?contains=${encodeURIComponent(marker)}`);
  return (await res.json()) as any;
}

/**
 * A gateway of its own for one test file, run in workerd against the same bindings (D1, the
 * recording origin) as the main test worker. `upstreams` defaults to the recording origin's
 * `echo` and `prefixed`. Returns a fetch that reads the response body, then waits for the
 * request's `waitUntil` work.
 */
export function testGateway(config: Omit<Parameters<typeof defineGateway>[0], "upstreams"> & { upstreams?: Parameters<typeof defineGateway>[0]["upstreams"] }, bindings?: Record<string, unknown>) {
  const app = createApp(defineGateway({ upstreams: testUpstreams, ...config }));
  // One bindings object for the gateway's life, as in an isolate (per-env caches key on it).
  const gatewayEnv = bindings ? { ...env, ...bindings } : env;
  return async (path: string, init: RequestInit & { ip?: string } = {}): Promise<Response> => {
    const { ip, ...rest } = init;
    const req = new Request(`https://gateway.test${path}`, { redirect: "manual", ...rest });
    if (ip) req.headers.set("cf-connecting-ip", ip);
    const ctx = createExecutionContext();
    // Read the body first, as a client would: the audit event of a streamed (length-less) body is
    // recorded when that body ends, in a waitUntil that would otherwise never settle.
    const res = await readToEnd(await app.fetch(req, gatewayEnv, ctx));
    await waitOnExecutionContext(ctx);
    return res;
  };
}

/** The origin credential the test upstreams inject: it must never appear in a response to a client. */
export const ORIGIN_SECRET = env.ECHO_ORIGIN_TOKEN;

/** Bytes of a base64 string (the recording origin reports bodies in base64). */
export const fromBase64 = (b64: string) => Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
export const textOf = (b64: string) => new TextDecoder().decode(fromBase64(b64));
