import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { get, post, signIn } from "../dashboard-helpers";
import { admin, expectProblem, gw, json, unique } from "../helpers";

describe("dashboard sign-in and session", () => {
  it("sends a browser without a session to the sign-in page, which asks for the token in a password field", async () => {
    const res = await get("/users");
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/admin/ui/login");
    const login = await get("/login");
    expect(login.status).toBe(200);
    expect(login.headers.get("cache-control")).toBe("no-store");
    expect(login.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = await login.text();
    expect(html).toMatch(/<label for="token">Admin token<\/label>/);
    expect(html).toMatch(/<input id="token" name="token" type="password"/);
  });

  it("exchanges the admin token for an HttpOnly, Secure, SameSite=Strict cookie that does not contain the token", async () => {
    const res = await post("/login", { token: env.ADMIN_TOKEN });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/admin/ui/users");
    const sc = res.headers.get("set-cookie") ?? "";
    expect(sc).toMatch(/^portcullis_session=v1\./);
    expect(sc).toContain("HttpOnly");
    expect(sc).toContain("Secure");
    expect(sc).toContain("SameSite=Strict");
    expect(sc).toContain("Path=/admin/ui");
    expect(sc).not.toContain(env.ADMIN_TOKEN);
    const page = await get("/users", sc.split(";")[0]);
    expect(page.status).toBe(200);
    expect(await page.text()).not.toContain(env.ADMIN_TOKEN);
  });

  it("omits Secure only for local development on a loopback host", async () => {
    const res = await SELF.fetch("http://127.0.0.1:8787/admin/ui/login", {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: "http://127.0.0.1:8787" },
      body: new URLSearchParams({ token: env.ADMIN_TOKEN }),
    });
    expect(res.status).toBe(303);
    const sc = res.headers.get("set-cookie") ?? "";
    expect(sc).toContain("HttpOnly");
    expect(sc).not.toContain("Secure");
  });

  it("refuses a wrong token without setting a cookie", async () => {
    const res = await post("/login", { token: "not-the-token-0123456789" });
    expect(res.status).toBe(401);
    expect(res.headers.get("set-cookie")).toBeNull();
    expect(await res.text()).toContain("That is not the admin token.");
  });

  it("refuses a sign-in posted from another origin (login CSRF)", async () => {
    const res = await post("/login", { token: env.ADMIN_TOKEN }, undefined, "https://evil.example");
    expect(res.status).toBe(403);
    expect(res.headers.get("set-cookie")).toBeNull();
  });

  it("treats a tampered or foreign cookie as signed out", async () => {
    const { cookie } = await signIn();
    const tampered = cookie.replace(/v1\.(\d+)\./, (_m, exp) => `v1.${Number(exp) + 1000}.`);
    expect((await get("/users", tampered)).status).toBe(303);
    expect((await get("/users", "portcullis_session=v1.1.AAAAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).status).toBe(303);
  });

  it("signs out by clearing the cookie", async () => {
    const { cookie, csrf } = await signIn();
    const res = await post("/logout", { _csrf: csrf }, cookie);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/admin/ui/login");
    expect(res.headers.get("set-cookie")).toMatch(/portcullis_session=;.*Max-Age=0/);
  });
});

describe("dashboard forms", () => {
  it("rejects a form without the session's CSRF token and changes nothing", async () => {
    const { cookie } = await signIn();
    const name = unique("ui-nocsrf");
    const res = await post("/users", { name }, cookie);
    await expectProblem(res, 403, "FORBIDDEN");
    const other = await post("/users", { name, _csrf: "x".repeat(43) }, cookie);
    await expectProblem(other, 403, "FORBIDDEN");
    const list = await json(await admin("GET", `/users?name=${name}`));
    expect(list.data).toEqual([]);
  });

  it("rejects a form posted from another origin even with the CSRF token", async () => {
    const { cookie, csrf } = await signIn();
    const name = unique("ui-xorigin");
    const res = await post("/users", { name, _csrf: csrf }, cookie, "https://evil.example");
    expect(res.status).toBe(403);
    expect((await json(await admin("GET", `/users?name=${name}`))).data).toEqual([]);
  });

  it("creates a user with roles, issues a key shown once that works through the proxy, then revokes it", async () => {
    const { cookie, csrf } = await signIn();
    const roleName = unique("ui-role");
    expect((await post("/roles", { name: roleName, permissions: "echo:read, echo:write", _csrf: csrf }, cookie)).status).toBe(303);
    const name = unique("ui-user");
    const created = await post("/users", { name, group: "partner", roles: [roleName], _csrf: csrf }, cookie);
    expect(created.status).toBe(303);
    const location = created.headers.get("location")!;
    expect(location).toMatch(/^\/admin\/ui\/users\/usr_[0-9A-Za-z]+\?notice=created$/);
    const userId = /users\/(usr_[0-9A-Za-z]+)/.exec(location)![1]!;

    const user = await json(await admin("GET", `/users/${userId}`));
    expect(user).toMatchObject({ name, group: "partner", roles: [roleName], status: "active" });

    const issued = await post(`/users/${userId}/keys`, { name: "from-ui", expiresInDays: "30", _csrf: csrf }, cookie);
    expect(issued.status).toBe(200);
    expect(issued.headers.get("cache-control")).toBe("no-store");
    const page = await issued.text();
    const key = /id="new-key" type="text" readonly="" value="([^"]+)"/.exec(page)?.[1];
    expect(key).toMatch(/^pcl_/);
    expect(page).toContain("This is the only time the key is shown.");

    // The key works through the proxy…
    expect((await gw(`/echo/ui-${userId}`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    // …is never shown again…
    const again = await (await get(`/users/${userId}`, cookie)).text();
    expect(again).not.toContain(key!);
    expect(again).toContain(key!.slice(0, 8));
    // …and stops working once revoked.
    const keys = await json(await admin("GET", `/users/${userId}/keys`));
    const keyId = keys.data[0].id;
    const revoked = await post(`/users/${userId}/keys/${keyId}/revoke`, { _csrf: csrf }, cookie);
    expect(revoked.status).toBe(303);
    await expectProblem(await gw(`/echo/ui-${userId}`, { headers: { authorization: `Bearer ${key}` } }), 401, "KEY_INVALID");
    expect((await json(await admin("GET", `/keys/${keyId}`))).status).toBe("revoked");
  });

  it("rotates a key with a grace period: the page shows the successor once and the old key keeps working", async () => {
    const { cookie, csrf } = await signIn();
    const roleName = unique("ui-role");
    await post("/roles", { name: roleName, permissions: "echo:read", _csrf: csrf }, cookie);
    const name = unique("ui-rot");
    const userId = /users\/(usr_[0-9A-Za-z]+)/.exec((await post("/users", { name, roles: roleName, _csrf: csrf }, cookie)).headers.get("location")!)![1]!;
    const first = /value="(pcl_[^"]+)"/.exec(await (await post(`/users/${userId}/keys`, { _csrf: csrf }, cookie)).text())![1]!;
    const keyId = (await json(await admin("GET", `/users/${userId}/keys`))).data[0].id;
    const rotated = await post(`/users/${userId}/keys/${keyId}/rotate`, { gracePeriodSeconds: "3600", _csrf: csrf }, cookie);
    expect(rotated.status).toBe(200);
    const second = /value="(pcl_[^"]+)"/.exec(await rotated.text())![1]!;
    expect(second).not.toBe(first);
    for (const k of [first, second]) expect((await gw(`/echo/rot-${userId}`, { headers: { authorization: `Bearer ${k}` } })).status).toBe(200);
  });

  it("disables a user from the list, filters by status and search, and records the dashboard as the audit actor", async () => {
    const { cookie, csrf } = await signIn();
    const name = unique("ui-dis");
    const userId = /users\/(usr_[0-9A-Za-z]+)/.exec((await post("/users", { name, group: "qa", _csrf: csrf }, cookie)).headers.get("location")!)![1]!;
    const res = await post(`/users/${userId}/status`, { status: "disabled", back: "list", _csrf: csrf }, cookie);
    expect(res.headers.get("location")).toBe("/admin/ui/users?notice=disabled");
    expect((await json(await admin("GET", `/users/${userId}`))).status).toBe("disabled");
    const filtered = await (await get(`/users?search=${name.toUpperCase()}&status=disabled`, cookie)).text();
    expect(filtered).toContain(name);
    const active = await (await get(`/users?search=${name}&status=active`, cookie)).text();
    expect(active).not.toContain(`>${name}<`);
    const row = await env.DB.prepare("SELECT actor, action FROM admin_audit WHERE target_id = ? ORDER BY created_at").bind(userId).all();
    expect(row.results).toEqual([
      { actor: "admin-ui", action: "user.create" },
      { actor: "admin-ui", action: "user.update" },
    ]);
  });

  it("shows a service error (duplicate name) on the page instead of failing", async () => {
    const { cookie, csrf } = await signIn();
    const name = unique("ui-dup");
    await post("/users", { name, _csrf: csrf }, cookie);
    const res = await post("/users", { name, _csrf: csrf }, cookie);
    // The page itself, with the admin API's status for a taken name (details: dashboard-forms.test.ts).
    expect(res.status).toBe(409);
    const page = await res.text();
    expect(page).toContain(`A proxy user named &quot;${name}&quot; already exists.`);
  });

  it("cannot act on another user's key through a user's URL", async () => {
    const { cookie, csrf } = await signIn();
    const a = /users\/(usr_[0-9A-Za-z]+)/.exec((await post("/users", { name: unique("ui-a"), _csrf: csrf }, cookie)).headers.get("location")!)![1]!;
    const b = /users\/(usr_[0-9A-Za-z]+)/.exec((await post("/users", { name: unique("ui-b"), _csrf: csrf }, cookie)).headers.get("location")!)![1]!;
    await post(`/users/${b}/keys`, { _csrf: csrf }, cookie);
    const keyOfB = (await json(await admin("GET", `/users/${b}/keys`))).data[0].id;
    const res = await post(`/users/${a}/keys/${keyOfB}/revoke`, { _csrf: csrf }, cookie);
    expect(res.headers.get("location")).toMatch(/error=/);
    expect((await json(await admin("GET", `/keys/${keyOfB}`))).status).toBe("active");
  });
});
