// The admin API's bearer token is throttled per client address, in the same count as the
// dashboard's sign-in (worker/services/sign-in-throttle.ts), in workerd against real D1.
import { env } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { expectProblem, gw, json } from "../helpers";
import { ORIGIN, post } from "../dashboard-helpers";

const WRONG = "not-the-admin-token-0123456789";
let n = 0;
/** A client address of its own per test (the throttle counts per address). */
const freshIp = () => `203.0.${100 + n++}.${1 + Math.floor(Math.random() * 250)}`;

/** GET /admin/v1/users from `ip`, with `Authorization: Bearer <token>` (or `headers` as given). */
const call = (ip: string, token: string | null, headers: Record<string, string> = {}) =>
  gw("/admin/v1/users", { headers: { "cf-connecting-ip": ip, ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...headers } });

async function failuresOf(ip: string) {
  return env.DB.prepare("SELECT failures, window_start FROM admin_sign_in_failures WHERE client = ?").bind(`ip:${ip}`).first<{ failures: number; window_start: number }>();
}

describe("admin API token throttle", () => {
  it("answers 429 ADMIN_THROTTLED with Retry-After after 5 wrong tokens — to the right token too — while other addresses are served", async () => {
    const ip = freshIp();
    for (let i = 0; i < 5; i++) await expectProblem(await call(ip, WRONG), 401, "ADMIN_UNAUTHORIZED");
    expect(await failuresOf(ip)).toMatchObject({ failures: 5 });

    const throttled = await call(ip, env.ADMIN_TOKEN);
    const body = await expectProblem(throttled, 429, "ADMIN_THROTTLED");
    const retryAfter = Number(throttled.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(890);
    expect(retryAfter).toBeLessThanOrEqual(900);
    expect(body.detail).toContain(`${retryAfter} s`);
    expect(JSON.stringify(body)).not.toContain(env.ADMIN_TOKEN);
    // The right token was not counted as a failure.
    expect(await failuresOf(ip)).toMatchObject({ failures: 5 });

    // A wrong token gets the very same answer, so a 429 says nothing about what was sent.
    const wrong = await call(ip, WRONG);
    expect(await expectProblem(wrong, 429, "ADMIN_THROTTLED")).toMatchObject({ title: body.title, detail: expect.stringMatching(/try again in \d+ s\.$/) });
    expect(await failuresOf(ip)).toMatchObject({ failures: 6 });

    // Another address is not affected.
    const other = await call(freshIp(), env.ADMIN_TOKEN);
    expect(other.status).toBe(200);
    expect(Array.isArray((await json(other)).data)).toBe(true);
  });

  it("counts only wrong bearer tokens: right ones write nothing, a missing header or another scheme is not a guess", async () => {
    const ip = freshIp();
    for (let i = 0; i < 8; i++) expect((await call(ip, env.ADMIN_TOKEN)).status).toBe(200);
    expect(await failuresOf(ip)).toBeNull();
    for (let i = 0; i < 6; i++) {
      await expectProblem(await call(ip, null), 401, "ADMIN_UNAUTHORIZED");
      await expectProblem(await call(ip, null, { authorization: `Basic ${btoa(`admin:${WRONG}`)}` }), 401, "ADMIN_UNAUTHORIZED");
    }
    expect(await failuresOf(ip)).toBeNull();
    for (let i = 0; i < 4; i++) await expectProblem(await call(ip, WRONG), 401, "ADMIN_UNAUTHORIZED");
    expect((await call(ip, env.ADMIN_TOKEN)).status).toBe(200);
    await expectProblem(await call(ip, WRONG), 401, "ADMIN_UNAUTHORIZED");
    await expectProblem(await call(ip, env.ADMIN_TOKEN), 429, "ADMIN_THROTTLED");
  });

  it("counts an IPv6 /64 as one address; the next /64 is another", async () => {
    const net = `2001:db8:${(Date.now() % 65_000).toString(16)}`;
    for (let i = 1; i <= 5; i++) await expectProblem(await call(`${net}:1::${i}`, WRONG), 401, "ADMIN_UNAUTHORIZED");
    await expectProblem(await call(`${net}:1::abcd`, env.ADMIN_TOKEN), 429, "ADMIN_THROTTLED");
    expect((await call(`${net}:2::1`, env.ADMIN_TOKEN)).status).toBe(200);
  });

  it("refuses a throttled mutation before it runs: nothing is stored", async () => {
    const ip = freshIp();
    for (let i = 0; i < 5; i++) await call(ip, WRONG);
    const name = `throttled-${Date.now().toString(36)}`;
    const res = await gw("/admin/v1/users", {
      method: "POST",
      headers: { "cf-connecting-ip": ip, authorization: `Bearer ${env.ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name }),
    });
    await expectProblem(res, 429, "ADMIN_THROTTLED");
    expect(await env.DB.prepare("SELECT id FROM proxy_users WHERE name = ?").bind(name).first()).toBeNull();
  });

  it("shares one count with the dashboard's sign-in: both guess the same token", async () => {
    const ip = freshIp();
    for (let i = 0; i < 3; i++) expect((await post("/login", { token: WRONG }, undefined, ORIGIN, ip)).status).toBe(401);
    for (let i = 0; i < 2; i++) await expectProblem(await call(ip, WRONG), 401, "ADMIN_UNAUTHORIZED");
    await expectProblem(await call(ip, env.ADMIN_TOKEN), 429, "ADMIN_THROTTLED");
    expect((await post("/login", { token: env.ADMIN_TOKEN }, undefined, ORIGIN, ip)).status).toBe(429);
  });

  it("a burst of concurrent wrong tokens gets exactly 5 answers of 401; the rest are throttled", async () => {
    const ip = freshIp();
    const res = await Promise.all(Array.from({ length: 12 }, () => call(ip, WRONG)));
    const statuses = res.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(7);
    await expectProblem(await call(ip, env.ADMIN_TOKEN), 429, "ADMIN_THROTTLED");
  });

  it("serves the address again once its window has passed, and starts a new count", async () => {
    const ip = freshIp();
    for (let i = 0; i < 5; i++) await call(ip, WRONG);
    await expectProblem(await call(ip, env.ADMIN_TOKEN), 429, "ADMIN_THROTTLED");
    // Move the window back past ADMIN_SIGNIN_WINDOW_SECONDS (900 s) instead of waiting for it.
    await env.DB.prepare("UPDATE admin_sign_in_failures SET window_start = window_start - 901000 WHERE client = ?").bind(`ip:${ip}`).run();
    expect((await call(ip, env.ADMIN_TOKEN)).status).toBe(200);
    await expectProblem(await call(ip, WRONG), 401, "ADMIN_UNAUTHORIZED");
    expect(await failuresOf(ip)).toMatchObject({ failures: 1 });
  });

  it("logs one line per refusal — each wrong token, each throttled call — with the client bucket and request id, never the token sent", async () => {
    const ip = freshIp();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      const refused = await expectProblem(await call(ip, WRONG), 401, "ADMIN_UNAUTHORIZED");
      expect((await call(ip, env.ADMIN_TOKEN)).status).toBe(200);
      for (let i = 0; i < 4; i++) await call(ip, WRONG);
      const throttledWrong = await expectProblem(await call(ip, WRONG), 429, "ADMIN_THROTTLED");
      const throttledRight = await expectProblem(await call(ip, env.ADMIN_TOKEN), 429, "ADMIN_THROTTLED");
      const lines = warn.mock.calls.map(([line]) => String(line));
      const ours = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === "admin token rejected" || l.msg === "admin API throttled");
      const client = `ip:${ip}`;
      expect(ours).toHaveLength(7);
      expect(ours[0]).toEqual({ level: "warn", msg: "admin token rejected", requestId: refused.requestId, client });
      expect(ours.slice(1, 5).every((l) => l.msg === "admin token rejected" && l.client === client)).toBe(true);
      expect(ours[5]).toEqual({ level: "warn", msg: "admin API throttled", requestId: throttledWrong.requestId, client, retryAfterSeconds: expect.any(Number) });
      expect(ours[6]).toEqual({ level: "warn", msg: "admin API throttled", requestId: throttledRight.requestId, client, retryAfterSeconds: expect.any(Number) });
      for (const l of lines) {
        expect(l).not.toContain(WRONG);
        expect(l).not.toContain(env.ADMIN_TOKEN);
      }
    } finally {
      warn.mockRestore();
    }
  });
});
