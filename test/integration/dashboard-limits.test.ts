// The limits section of a proxy user's dashboard page, in workerd: what it shows, its forms, CSRF,
// bad input, and the admin audit rows its changes leave.
import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { get, post, signIn } from "../dashboard-helpers";
import { admin, expectProblem, gw, json, seedCaller, unique } from "../helpers";
import { clearOfHourEdge } from "../window-edges";

const userPath = (id: string) => `/users/${id}`;

/** The text of the limits table's row(s) for `name`, tags stripped, cells separated by " | ". */
function limitRows(html: string, name: string): string[] {
  return [...html.matchAll(new RegExp(`<tr data-limit="${name}">([\\s\\S]*?)</tr>`, "g"))].map((m) =>
    m[1]!
      .replace(/<form[\s\S]*?<\/form>/g, "")
      .replace(/<\/t[dh]>/g, " | ")
      .replace(/<[^>]+>/g, "")
      .replace(/\s+/g, " ")
      .trim(),
  );
}

async function userPage(id: string, cookie: string) {
  const res = await get(userPath(id), cookie);
  expect(res.status).toBe(200);
  return res.text();
}

/** Admin audit rows of a user, oldest first. */
async function auditOf(userId: string) {
  const rows = await env.DB.prepare("SELECT actor, action, after FROM admin_audit WHERE target_id = ? ORDER BY created_at, seq").bind(userId).all<{ actor: string; action: string; after: string }>();
  return rows.results;
}

describe("dashboard: a user's limits", () => {
  // The usage shown is counted in 1 h windows and a monthly quota: never across an hour edge (test/window-edges.ts).
  beforeEach(() => clearOfHourEdge(20_000), 30_000);

  it("shows route defaults, role and user overrides, the effective limit and current usage; sets, resets and removes, each audited", async () => {
    const { cookie, csrf } = await signIn();
    const { user, role, key } = await seedCaller({ permissions: ["echo:read"] });
    // A role override of the rate limit "api" (route default 3 per hour).
    expect((await admin("PUT", `/roles/${role.id}/limits`, { limits: { api: { limit: 9 } } })).status).toBe(200);

    let html = await userPage(user.id, cookie);
    expect(html).toContain('<h2 id="limits">Limits</h2>');
    expect(limitRows(html, "api")[0]).toMatch(/^api \| rate, sliding window, per 1 h \| user \| 3 \| 9 \(.+\) \| — \| 9 \(role .+\) \| 0 \| 9 \|/);
    expect(limitRows(html, "monthly")[0]).toMatch(/^monthly \| quota, per month \(UTC\) \| user \| 5 \| — \| — \| 5 \(route default\) \| 0 \| 5 \|/);
    // Counted per user and route: one row per route; per client IP: no per-user usage.
    expect(limitRows(html, "per-route").map((r) => r.split(" | ")[0])).toEqual(["per-route (rl-route-a)", "per-route (rl-route-b)"]);
    expect(limitRows(html, "rl-ip")[0]).toContain("not counted per user");
    expect(limitRows(html, "rl-do")[0]).toMatch(/^rl-do \| rate, fixed window, per 1 h \| user \| 20 \|/);
    // Windows as an operator says them: the default "1m", and seconds.
    expect(limitRows(html, "fail-up-down-open")[0]).toMatch(/^fail-up-down-open \| rate, sliding window, per 1 min \| key \| 5 \|/);
    expect(limitRows(html, "rl-expiry")[0]).toMatch(/^rl-expiry \| rate, fixed window, per 2 s \| user \| 1 \|/);
    // Every control of the form is labelled.
    expect(html).toMatch(/<label for="lim-monthly">monthly <span class="muted">\(per month, default 5\)<\/span><\/label><input id="lim-monthly" name="limit.monthly" type="number"/);

    // Set a user override from the form: monthly 4 (and api left empty: no override).
    const set = await post(`${userPath(user.id)}/limits`, { "limit.monthly": "4", "limit.api": "", _csrf: csrf }, cookie);
    expect(set.status).toBe(303);
    expect(set.headers.get("location")).toBe(`/admin/ui/users/${user.id}?notice=limits#limits`);
    expect((await json(await admin("GET", `/users/${user.id}/limits`))).limits).toEqual({ monthly: { limit: 4, updatedAt: expect.any(String) } });

    // Requests through the proxy with the user's key show up as usage.
    for (let i = 0; i < 2; i++) expect((await gw(`/quota-do/${unique("q")}`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    html = await userPage(`${user.id}?notice=limits`, cookie);
    expect(html).toContain("Limit overrides saved.");
    expect(limitRows(html, "monthly")[0]).toMatch(/^monthly \| quota, per month \(UTC\) \| user \| 5 \| — \| 4 \| 4 \(user override\) \| 2 \| 2 \| \d{4}-\d\d-\d\d \d\d:\d\d UTC \|/);
    expect(html).toMatch(/<input id="lim-monthly" name="limit.monthly" type="number" min="0" max="1000000000" step="1" inputmode="numeric" value="4"/);

    // Reset quota usage: back to zero, and the key can use the whole quota again.
    const reset = await post(`${userPath(user.id)}/limits/reset`, { _csrf: csrf }, cookie);
    // The redirect carries each quota counter's outcome; the page names what was reset.
    expect(reset.headers.get("location")).toBe(`/admin/ui/users/${user.id}?notice=limits-reset&reset=monthly&reset=monthly-up&reset=both-quota#limits`);
    html = await userPage(`${user.id}?notice=limits-reset&reset=monthly&reset=monthly-up&reset=both-quota`, cookie);
    expect(html).toContain('<p class="notice" role="status">Usage reset: monthly, monthly-up, both-quota.</p>');
    expect(html).not.toContain('role="alert"');
    expect(limitRows(html, "monthly")[0]).toContain("| 4 (user override) | 0 | 4 |");

    // One row's Reset button resets that limit (a rate limit too).
    await gw(`/rl-override/${unique("r")}`, { headers: { authorization: `Bearer ${key}` } });
    expect(limitRows(await userPage(user.id, cookie), "api")[0]).toContain("| 9 (role");
    expect(limitRows(await userPage(user.id, cookie), "api")[0]).toMatch(/\| 1 \| 8 \|/);
    expect((await post(`${userPath(user.id)}/limits/reset`, { names: "api", _csrf: csrf }, cookie)).status).toBe(303);
    expect(limitRows(await userPage(user.id, cookie), "api")[0]).toMatch(/\| 0 \| 9 \|/);

    // Remove all overrides: the route default applies again.
    const cleared = await post(`${userPath(user.id)}/limits/delete`, { _csrf: csrf }, cookie);
    expect(cleared.headers.get("location")).toBe(`/admin/ui/users/${user.id}?notice=limits-cleared#limits`);
    expect((await json(await admin("GET", `/users/${user.id}/limits`))).limits).toEqual({});
    expect(limitRows(await userPage(user.id, cookie), "monthly")[0]).toContain("| 5 (route default) |");

    const audit = (await auditOf(user.id)).filter((r) => r.action.startsWith("user.limits."));
    expect(audit.map((r) => [r.actor, r.action])).toEqual([
      ["admin-ui", "user.limits.set"],
      ["admin-ui", "user.limits.reset"],
      ["admin-ui", "user.limits.reset"],
      ["admin-ui", "user.limits.clear"],
    ]);
    expect(JSON.parse(audit[0]!.after)).toMatchObject({ limits: { monthly: { limit: 4 } } });
    expect(JSON.parse(audit[2]!.after)).toEqual({ reset: [{ name: "api", route: null }] });
  });

  it("shows bad input on the page (400) with the operator's values kept, and stores nothing", async () => {
    const { cookie, csrf } = await signIn();
    const { user } = await seedCaller({ permissions: ["echo:read"] });
    await admin("PUT", `/users/${user.id}/limits`, { limits: { api: { limit: 7 } } });

    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ "limit.monthly": "abc", "limit.api": "2" }, /limits\.monthly\.limit: must be a whole number from 0 to 1000000000/],
      [{ "limit.monthly": "-1" }, /limits\.monthly\.limit: must be a whole number/],
      [{ "limit.monthly": "2000000000" }, /limits\.monthly\.limit: Too big/],
      [{ "limit.nope": "3" }, /Unknown limit name\(s\): nope\./],
    ];
    for (const [fields, message] of cases) {
      const res = await post(`${userPath(user.id)}/limits`, { ...fields, _csrf: csrf }, cookie);
      expect(res.status).toBe(400);
      expect(res.headers.get("content-type")).toMatch(/^text\/html/);
      const html = await res.text();
      expect(html).toMatch(/<p class="error" role="alert">The limit overrides were not saved\. /);
      expect(html).toMatch(message);
    }
    // The field in error is marked and explained, and what the operator typed is still there.
    const res = await post(`${userPath(user.id)}/limits`, { "limit.monthly": "abc", "limit.api": "2", _csrf: csrf }, cookie);
    const html = await res.text();
    expect(html).toMatch(/<input id="lim-monthly" name="limit.monthly" type="number"[^>]* value="abc"[^>]* aria-invalid="true" aria-describedby="lim-monthly-error"\/><span id="lim-monthly-error" class="field-error">must be a whole number/);
    expect(html).toMatch(/<input id="lim-api" name="limit.api" type="number"[^>]* value="2"/);

    expect((await json(await admin("GET", `/users/${user.id}/limits`))).limits).toMatchObject({ api: { limit: 7 } });
    expect(Object.keys((await json(await admin("GET", `/users/${user.id}/limits`))).limits)).toEqual(["api"]);
    expect((await auditOf(user.id)).filter((r) => r.actor === "admin-ui")).toEqual([]);

    // Resetting a limit the user has no counter of is shown on the page, not a 500.
    const reset = await post(`${userPath(user.id)}/limits/reset`, { names: "rl-ip", _csrf: csrf }, cookie);
    expect(reset.status).toBe(303);
    const back = reset.headers.get("location")!;
    expect(back).toMatch(/^\/admin\/ui\/users\/usr_\w+\?error=/);
    expect(await (await get(back.replace("/admin/ui", ""), cookie)).text()).toContain("No per-user limit named: rl-ip.");
  });

  it("refuses limit forms without the session's CSRF token or from another origin, changing nothing", async () => {
    const { cookie, csrf } = await signIn();
    const { user, key } = await seedCaller({ permissions: ["echo:read"] });
    expect((await gw(`/quota-do/${unique("q")}`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);

    await expectProblem(await post(`${userPath(user.id)}/limits`, { "limit.monthly": "1" }, cookie), 403, "FORBIDDEN");
    await expectProblem(await post(`${userPath(user.id)}/limits`, { "limit.monthly": "1", _csrf: "x".repeat(43) }, cookie), 403, "FORBIDDEN");
    expect((await post(`${userPath(user.id)}/limits`, { "limit.monthly": "1", _csrf: csrf }, cookie, "https://evil.example")).status).toBe(403);
    await expectProblem(await post(`${userPath(user.id)}/limits/reset`, {}, cookie), 403, "FORBIDDEN");
    await expectProblem(await post(`${userPath(user.id)}/limits/delete`, {}, cookie), 403, "FORBIDDEN");
    // Without a session at all: sent to sign in.
    const anon = await post(`${userPath(user.id)}/limits`, { "limit.monthly": "1", _csrf: csrf });
    expect(anon.status).toBe(303);
    expect(anon.headers.get("location")).toBe("/admin/ui/login");

    expect((await json(await admin("GET", `/users/${user.id}/limits`))).limits).toEqual({});
    const status = (await json(await admin("GET", `/users/${user.id}/limits/status`))).limits.find((l: { name: string }) => l.name === "monthly");
    expect(status).toMatchObject({ used: 1, remaining: 4 });
    expect((await auditOf(user.id)).filter((r) => r.actor === "admin-ui")).toEqual([]);
  });

  it("answers a form for an unknown user with the not-found page's message", async () => {
    const { cookie, csrf } = await signIn();
    const res = await post(`/users/usr_doesnotexist0000000/limits`, { "limit.monthly": "1", _csrf: csrf }, cookie);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toMatch(/^\/admin\/ui\/users\/usr_doesnotexist0000000\?error=No%20proxy%20user/);
  });
});

describe("dashboard: the limits page", () => {
  beforeEach(() => clearOfHourEdge(20_000), 30_000);

  /** The text of the declared-limits row whose first cell is `name`. */
  const declaredRow = (html: string, name: string) =>
    [...html.matchAll(/<tr><td class="mono">([\s\S]*?)<\/tr>/g)]
      .map((m) => m[1]!.replace(/<\/td>/g, " | ").replace(/<[^>]+>/g, "").replace(/\s+/g, " ").trim())
      .find((t) => t.startsWith(`${name} |`));

  it("lists every declared limit; a group's shared counter is shown, reset for all (audited as the dashboard) and then admits again; bad input is a message, not a 500", async () => {
    const { cookie, csrf } = await signIn();
    const group = unique("grp").replace(/[^a-z0-9-]/g, "-").slice(0, 60);
    const { key } = await seedCaller({ group });
    for (let i = 0; i < 3; i++) expect((await gw(`/shared-do/${unique("m")}`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);

    const list = await (await get("/limits", cookie)).text();
    expect(list).toContain('aria-current="page">Limits</a>');
    expect(declaredRow(list, "shared-do")).toMatch(/^shared-do \| rate, sliding window, per 1 h \| 20 \| group \| shared-do \|/);
    expect(list).toContain('action="/admin/ui/limits/shared-do"');
    // The group field suggests the groups users are in.
    expect(list).toContain(`<option value="${group}"></option>`);
    expect(declaredRow(list, "rl-do")).toMatch(/\| user \| rl-do \| per caller \|$/);

    const usedOf = async () => {
      const html = await (await get(`/limits/shared-do?group=${group}`, cookie)).text();
      const cells = /<td>all its routes<\/td><td>(\d+)<\/td><td>(\d+)<\/td><td>20<\/td>/.exec(html);
      expect(cells, html).not.toBeNull();
      return { used: Number(cells![1]), remaining: Number(cells![2]), html };
    };
    // Leases count as used: at least the three requests, at most one lease more.
    const before = await usedOf();
    expect(before.used).toBeGreaterThanOrEqual(3);
    expect(before.used + before.remaining).toBe(20);
    expect(before.html).toContain(`group ${group}`);

    const res = await post("/limits/shared-do/reset", { group, _csrf: csrf }, cookie);
    expect(res.status).toBe(303);
    const to = new URL(res.headers.get("location")!, "https://gateway.test");
    expect(to.pathname).toBe("/admin/ui/limits/shared-do");
    expect(to.searchParams.get("group")).toBe(group);
    expect(to.searchParams.getAll("reset")).toEqual(["shared-do"]);
    expect(await (await get(`${to.pathname.slice("/admin/ui".length)}${to.search}`, cookie)).text()).toContain("Usage reset: shared-do.");
    expect((await usedOf()).used).toBe(0);
    const audit = await env.DB.prepare("SELECT actor, after FROM admin_audit WHERE action = 'limit.reset' AND target_id = 'shared-do' AND instr(after, ?) > 0").bind(group).all<{ actor: string; after: string }>();
    expect(audit.results.map((r) => r.actor)).toEqual(["admin-ui"]);
    expect(JSON.parse(audit.results[0]!.after)).toMatchObject({ group, reset: [{ name: "shared-do", route: null }] });
    expect((await gw(`/shared-do/${unique("m")}`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);

    // A group limit without a group, a per-caller limit, an unknown one: back to the list with the reason.
    for (const [path, reason] of [
      ["/limits/shared-do", "is counted per group"],
      ["/limits/rl-do", "is counted per user"],
      ["/limits/nope", 'No rate-limit or quota plugin is named "nope"'],
    ] as const) {
      const r = await get(path, cookie);
      expect(r.status, path).toBe(303);
      expect(decodeURIComponent(r.headers.get("location")!), path).toContain(reason);
    }
    // Without the session's CSRF token nothing is reset.
    expect((await post("/limits/shared-do/reset", { group }, cookie)).status).toBe(403);
  });
});
