// Dashboard sign-in hardening, in workerd: failed sign-ins throttled per client address, and
// server-side sessions (sign-out kills every copy of the cookie).
import { env } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { dashboardScheduled } from "../../worker/dashboard";
import { get, ORIGIN, post, signIn } from "../dashboard-helpers";

const WRONG = "not-the-admin-token-0123456789";
let n = 0;
/** A client address of its own per test (the throttle counts per address). */
const freshIp = () => `198.51.${100 + n++}.${1 + Math.floor(Math.random() * 250)}`;
const attempt = (token: string, ip: string) => post("/login", { token }, undefined, ORIGIN, ip);

/** The admin_sessions row id of a session cookie (rows are keyed by a SHA-256 of the cookie's nonce). */
async function sessionIdOf(cookie: string): Promise<string | undefined> {
  const nonce = /^portcullis_session=v1\.\d+\.([^.]+)\./.exec(cookie)![1]!;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(nonce)));
  const hash = btoa(String.fromCharCode(...digest)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  const row = await env.DB.prepare("SELECT id FROM admin_sessions WHERE nonce_hash = ?").bind(hash).first<{ id: string }>();
  return row?.id;
}

async function failuresOf(client: string) {
  return env.DB.prepare("SELECT failures, window_start FROM admin_sign_in_failures WHERE client = ?").bind(client).first<{ failures: number; window_start: number }>();
}

describe("dashboard sign-in throttle", () => {
  it("refuses a sixth attempt within the window with 429 and Retry-After — even with the right token — while other addresses sign in", async () => {
    const ip = freshIp();
    for (let i = 0; i < 5; i++) {
      const res = await attempt(WRONG, ip);
      expect(res.status).toBe(401);
      expect(await res.text()).toContain("That is not the admin token.");
    }
    const throttled = await attempt(env.ADMIN_TOKEN, ip);
    expect(throttled.status).toBe(429);
    expect(throttled.headers.get("set-cookie")).toBeNull();
    const retryAfter = Number(throttled.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(890);
    expect(retryAfter).toBeLessThanOrEqual(900);
    const html = await throttled.text();
    expect(html).toMatch(/<p class="error" role="alert">Too many failed sign-ins from your network address\. Try again in 15 minutes\.<\/p>/);
    expect(html).toContain('<input id="token" name="token" type="password"');

    // Another address is not affected.
    expect((await attempt(env.ADMIN_TOKEN, freshIp())).status).toBe(303);
    // The count stops at the limit + 1: refused attempts are never checked.
    expect((await attempt(WRONG, ip)).status).toBe(429);
    expect(await failuresOf(`ip:${ip}`)).toMatchObject({ failures: 6 });
  });

  it("logs every failed sign-in with its client bucket and request id, never the token sent", async () => {
    const ip = freshIp();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      const res = await attempt(WRONG, ip);
      expect(res.status).toBe(401);
      const ok = await attempt(env.ADMIN_TOKEN, ip);
      expect(ok.status).toBe(303);
      const lines = warn.mock.calls.map(([line]) => String(line));
      const failed = lines.filter((l) => l.includes('"dashboard sign-in failed"')).map((l) => JSON.parse(l));
      expect(failed).toEqual([{ level: "warn", msg: "dashboard sign-in failed", requestId: expect.stringMatching(/^req_[0-9a-f]{32}$/), client: `ip:${ip}` }]);
      // Neither the wrong token nor the real one is in any log line.
      for (const l of lines) {
        expect(l).not.toContain(WRONG);
        expect(l).not.toContain(env.ADMIN_TOKEN);
      }
    } finally {
      warn.mockRestore();
    }
  });

  it("counts only failures: successful sign-ins give their slot back", async () => {
    const ip = freshIp();
    for (let i = 0; i < 8; i++) expect((await attempt(env.ADMIN_TOKEN, ip)).status).toBe(303);
    expect(await failuresOf(`ip:${ip}`)).toMatchObject({ failures: 0 });
    for (let i = 0; i < 4; i++) expect((await attempt(WRONG, ip)).status).toBe(401);
    expect((await attempt(env.ADMIN_TOKEN, ip)).status).toBe(303);
    expect((await attempt(WRONG, ip)).status).toBe(401);
    expect((await attempt(WRONG, ip)).status).toBe(429);
  });

  it("checks at most five guesses from a burst of twenty concurrent ones", async () => {
    const ip = freshIp();
    const statuses = await Promise.all(Array.from({ length: 20 }, () => attempt(WRONG, ip).then((r) => r.status)));
    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(15);
  });

  it("counts an IPv6 /64 as one address", async () => {
    const net = `2001:db8:${(Date.now() % 65_000).toString(16)}:1`;
    for (let i = 1; i <= 5; i++) expect((await attempt(WRONG, `${net}::${i}`)).status).toBe(401);
    expect((await attempt(env.ADMIN_TOKEN, `${net}::abcd`)).status).toBe(429);
  });

  it("opens again once the window has passed, and the cron deletes passed windows", async () => {
    const ip = freshIp();
    for (let i = 0; i < 6; i++) await attempt(WRONG, ip);
    expect((await attempt(env.ADMIN_TOKEN, ip)).status).toBe(429);
    // Move the window 15 minutes into the past, as time would.
    await env.DB.prepare("UPDATE admin_sign_in_failures SET window_start = window_start - 900000 WHERE client = ?").bind(`ip:${ip}`).run();
    expect((await attempt(env.ADMIN_TOKEN, ip)).status).toBe(303);
    expect(await failuresOf(`ip:${ip}`)).toMatchObject({ failures: 0 });

    await env.DB.prepare("UPDATE admin_sign_in_failures SET window_start = window_start - 900000 WHERE client = ?").bind(`ip:${ip}`).run();
    await dashboardScheduled({ scheduledTime: Date.now() }, env as never);
    expect(await failuresOf(`ip:${ip}`)).toBeNull();
  });

  it("does not count a sign-in posted from another origin (refused before the token is read)", async () => {
    const ip = freshIp();
    for (let i = 0; i < 8; i++) expect((await post("/login", { token: WRONG }, undefined, "https://evil.example", ip)).status).toBe(403);
    expect(await failuresOf(`ip:${ip}`)).toBeNull();
  });
});

describe("dashboard sessions are server-side", () => {
  it("signing out kills a copied cookie too, and is audited without any part of the cookie", async () => {
    const { cookie, csrf } = await signIn();
    const copy = cookie;
    expect((await get("/users", copy)).status).toBe(200);
    const nonce = /^portcullis_session=v1\.\d+\.([^.]+)\./.exec(cookie)![1]!;

    const id = (await sessionIdOf(cookie))!;
    expect(id).toMatch(/^ses_/);

    const out = await post("/logout", { _csrf: csrf }, cookie);
    expect(out.status).toBe(303);
    expect(out.headers.get("set-cookie")).toMatch(/portcullis_session=;.*Max-Age=0/);

    // The copy still carries a valid signature, but the session is gone.
    const again = await get("/users", copy);
    expect(again.status).toBe(303);
    expect(again.headers.get("location")).toBe("/admin/ui/login");
    expect((await post("/users", { name: "after-sign-out", _csrf: csrf }, copy)).headers.get("location")).toBe("/admin/ui/login");
    expect(await env.DB.prepare("SELECT id FROM admin_sessions WHERE id = ?").bind(id).first()).toBeNull();

    const rows = await env.DB.prepare("SELECT actor, action, target_type, before, after FROM admin_audit WHERE target_id = ? ORDER BY seq").bind(id).all<Record<string, string>>();
    expect(rows.results.map((r) => [r.actor, r.action, r.target_type])).toEqual([
      ["admin-ui", "session.create", "session"],
      ["admin-ui", "session.delete", "session"],
    ]);
    expect(JSON.stringify(rows.results)).not.toContain(nonce);
    // The session table holds a hash of the nonce, never the nonce.
    expect(JSON.stringify((await env.DB.prepare("SELECT * FROM admin_sessions").all()).results)).not.toContain(nonce);
  });

  it("signing out one browser leaves the others signed in", async () => {
    const a = await signIn();
    const b = await signIn();
    expect((await post("/logout", { _csrf: a.csrf }, a.cookie)).status).toBe(303);
    expect((await get("/users", a.cookie)).status).toBe(303);
    expect((await get("/users", b.cookie)).status).toBe(200);
  });

  it("treats a session whose row has expired as signed out, and the cron deletes it", async () => {
    const { cookie } = await signIn();
    const id = (await sessionIdOf(cookie))!;
    await env.DB.prepare("UPDATE admin_sessions SET expires_at = ? WHERE id = ?").bind(Date.now() - 1, id).run();
    expect((await get("/users", cookie)).status).toBe(303);
    expect(await env.DB.prepare("SELECT id FROM admin_sessions WHERE id = ?").bind(id).first()).not.toBeNull();
    await dashboardScheduled({ scheduledTime: Date.now() }, env as never);
    expect(await env.DB.prepare("SELECT id FROM admin_sessions WHERE id = ?").bind(id).first()).toBeNull();
  });
});
