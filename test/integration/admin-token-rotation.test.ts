// Rotating ADMIN_TOKEN without a gap: while ADMIN_TOKEN_PREVIOUS is set, the old token still works
// (admin API and dashboard sign-in), and every use of it is logged and audited as such, so the
// operator can see when nothing uses it any more. In workerd against real D1.
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createApp } from "../../worker/app";
import { defineGateway } from "../../worker/gateway/config";
import { testUpstreams } from "../fixtures/upstreams";
import { expectProblem, unique } from "../helpers";

const OLD = env.ADMIN_TOKEN;
const NEW = "rotated-admin-token-0123456789abcdef";
const app = createApp(defineGateway({ upstreams: testUpstreams, routes: [{ name: "echo", path: "/echo/*", methods: ["GET"], upstream: "echo", plugins: [] }] }));
let n = 0;
/** A client address of its own per call group (wrong tokens count per address). */
const freshIp = () => `198.51.${100 + n++}.${1 + Math.floor(Math.random() * 250)}`;

/** A request to the gateway running with `bindings` (the test bindings, with these changed). */
async function call(bindings: Record<string, string | undefined>, path: string, init: RequestInit & { ip: string }) {
  const { ip, ...rest } = init;
  const req = new Request(`https://gateway.test${path}`, { redirect: "manual", ...rest });
  req.headers.set("cf-connecting-ip", ip);
  const ctx = createExecutionContext();
  const res = await app.fetch(req, { ...env, ...bindings }, ctx);
  const body = await res.arrayBuffer();
  await waitOnExecutionContext(ctx);
  return new Response(body, res);
}
const rotating = { ADMIN_TOKEN: NEW, ADMIN_TOKEN_PREVIOUS: OLD };
const bearer = (token: string) => ({ authorization: `Bearer ${token}`, "content-type": "application/json" });

afterEach(() => vi.restoreAllMocks());

describe("admin token rotation (ADMIN_TOKEN_PREVIOUS)", () => {
  it("accepts the new and the previous token, audits which one made a change, and logs each use of the previous one", async () => {
    const warn = vi.spyOn(console, "warn");
    const ip = freshIp();
    expect((await call(rotating, "/admin/v1/users", { ip, headers: bearer(NEW) })).status).toBe(200);
    expect(warn.mock.calls.flat().some((l) => String(l).includes("admin token previous used"))).toBe(false);
    expect((await call(rotating, "/admin/v1/users", { ip, headers: bearer(OLD) })).status).toBe(200);
    const lines = warn.mock.calls.flat().map(String).filter((l) => l.includes("admin token previous used"));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: "warn", client: `ip:${ip}`, requestId: expect.stringMatching(/^req_/) });
    expect(lines[0]).not.toContain(OLD);

    const viaOld = await call(rotating, "/admin/v1/roles", { ip, method: "POST", headers: bearer(OLD), body: JSON.stringify({ name: unique("rot-old"), permissions: [] }) });
    const viaNew = await call(rotating, "/admin/v1/roles", { ip, method: "POST", headers: bearer(NEW), body: JSON.stringify({ name: unique("rot-new"), permissions: [] }) });
    expect([viaOld.status, viaNew.status]).toEqual([201, 201]);
    const actorOf = async (res: Response) =>
      (await env.DB.prepare("SELECT actor FROM admin_audit WHERE target_id = ? AND action = 'role.create'").bind(((await res.json()) as { id: string }).id).first<{ actor: string }>())?.actor;
    expect(await actorOf(viaOld)).toBe("admin-token-previous");
    expect(await actorOf(viaNew)).toBe("admin-token");
  });

  it("refuses the old token once ADMIN_TOKEN_PREVIOUS is removed, and any other token meanwhile", async () => {
    const ip = freshIp();
    await expectProblem(await call({ ADMIN_TOKEN: NEW }, "/admin/v1/users", { ip, headers: bearer(OLD) }), 401, "ADMIN_UNAUTHORIZED");
    await expectProblem(await call(rotating, "/admin/v1/users", { ip, headers: bearer("neither-the-old-nor-the-new-token") }), 401, "ADMIN_UNAUTHORIZED");
    // Both refusals were counted as failed sign-ins of the address, as any wrong token is.
    const row = await env.DB.prepare("SELECT failures FROM admin_sign_in_failures WHERE client = ?").bind(`ip:${ip}`).first<{ failures: number }>();
    expect(row?.failures).toBe(2);
  });

  it("signs in to the dashboard with the previous token too, and logs it", async () => {
    const warn = vi.spyOn(console, "warn");
    const signIn = (token: string, bindings: Record<string, string | undefined>) =>
      call(bindings, "/admin/ui/login", {
        ip: freshIp(),
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", origin: "https://gateway.test" },
        body: new URLSearchParams({ token }),
      });
    const res = await signIn(OLD, rotating);
    expect(res.status).toBe(303);
    expect(res.headers.get("set-cookie")).toMatch(/^portcullis_session=/);
    expect(warn.mock.calls.flat().some((l) => String(l).includes("admin token previous used"))).toBe(true);
    expect((await signIn(OLD, { ADMIN_TOKEN: NEW })).status).toBe(401);
  });

  it("a too-short ADMIN_TOKEN_PREVIOUS is a misconfiguration, not a weak second token", async () => {
    const res = await call({ ADMIN_TOKEN: NEW, ADMIN_TOKEN_PREVIOUS: "short" }, "/admin/v1/users", { ip: freshIp(), headers: bearer("short") });
    await expectProblem(res, 500, "GATEWAY_MISCONFIGURED");
  });
});
