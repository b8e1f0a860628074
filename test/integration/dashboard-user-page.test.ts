// The user page's forms against the admin API's rules: the issue-key form is judged by the same
// schema as POST /admin/v1/users/{id}/keys, and saving the roles form never drops a held role
// the page did not list (it lists at most 100 roles).
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { get, post, signIn } from "../dashboard-helpers";
import { admin, json, seedCaller, unique } from "../helpers";

const unescape = (s: string | undefined) => s?.replaceAll("&quot;", '"').replaceAll("&#39;", "'").replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&");
const fieldError = (html: string, id: string) => unescape(new RegExp(`<span id="${id}-error" class="field-error">([^<]*)</span>`).exec(html)?.[1]);
const inputTag = (html: string, id: string) => new RegExp(`<input id="${id}"[^>]*>`).exec(html)?.[0] ?? "";

describe("dashboard: the issue-key form validates like POST /admin/v1/users/{id}/keys", () => {
  it("refuses a label over 100 characters or a bad permission with 400 beside the field, keeps what was typed, stores nothing", async () => {
    const { cookie, csrf } = await signIn("203.0.113.91");
    const { user } = await seedCaller({ permissions: ["echo:read"] });
    const before = (await json(await admin("GET", `/users/${user.id}/keys`))).data.length;
    const longName = "n".repeat(5000);
    const cases: Array<[string, Record<string, string>, "k-name" | "k-perms", RegExp]> = [
      ["a 5,000-character label", { name: longName, permissions: "" }, "k-name", /./],
      ["permissions the API refuses", { name: "ci", permissions: "echo:read <bad> perm!! $$$" }, "k-perms", /^"<bad>": permission strings use/],
    ];
    for (const [what, fields, id, message] of cases) {
      const res = await post(`/users/${user.id}/keys`, { ...fields, expiresInDays: "30", _csrf: csrf }, cookie);
      expect(res.status, what).toBe(400);
      expect(res.headers.get("content-type"), what).toMatch(/^text\/html/);
      const html = await res.text();
      expect(unescape(/<p class="error" role="alert">([^<]*)<\/p>/.exec(html)?.[1]), what).toMatch(/^The key was not issued\. /);
      expect(fieldError(html, id), what).toMatch(message);
      expect(inputTag(html, id), what).toMatch(/ aria-invalid="true"/);
      // What was typed is kept, and no key was shown or stored.
      expect(unescape(/ value="([^"]*)"/.exec(inputTag(html, "k-perms"))?.[1]), what).toBe(fields.permissions);
      expect(html, what).toMatch(/<option value="30" selected="">/);
      expect(html, what).not.toContain("copy it now");
      expect((await json(await admin("GET", `/users/${user.id}/keys`))).data.length, what).toBe(before);
      // The admin API refuses the same body.
      const perms = fields.permissions!.split(/\s+/).filter(Boolean);
      const api = await admin("POST", `/users/${user.id}/keys`, { name: fields.name, permissions: perms.length ? perms : null });
      expect(api.status, what).toBe(400);
    }
    const audited = await env.DB.prepare("SELECT count(*) AS n FROM admin_audit WHERE action = 'key.create' AND instr(coalesce(after, ''), ?) > 0").bind(user.id).first<{ n: number }>();
    expect(audited!.n).toBe(before);
    // Good input still issues a key, with its expiry.
    const ok = await post(`/users/${user.id}/keys`, { name: "ci-deploy", permissions: "echo:read, echo:list", expiresInDays: "30", _csrf: csrf }, cookie);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("copy it now");
    const issued = (await json(await admin("GET", `/users/${user.id}/keys`))).data.at(-1);
    expect(issued).toMatchObject({ name: "ci-deploy", permissions: ["echo:read", "echo:list"] });
    expect(Date.parse(issued.expiresAt) - Date.now()).toBeGreaterThan(29 * 86_400_000);
  });
});

describe("dashboard: the user page's roles form with more than 100 roles", () => {
  it("shows every role the user holds, so saving never drops one the role list did not reach", async () => {
    const names: string[] = [];
    try {
      for (let i = 0; i < 102; i += 17) {
        const batch = await Promise.all(Array.from({ length: Math.min(17, 102 - i) }, (_, j) => admin("POST", "/roles", { name: unique(`many${i + j}`), permissions: ["x:read"] })));
        for (const r of batch) {
          expect(r.status).toBe(201);
          names.push((await json(r)).name);
        }
      }
      // The newest role sorts last (ids are time-ordered): beyond the page's first 100.
      const newest = names.at(-1)!;
      const user = await json(await admin("POST", "/users", { name: unique("many-u"), roles: [names[0]!, newest] }));
      const { cookie, csrf } = await signIn("203.0.113.92");
      const page = await (await get(`/users/${user.id}`, cookie)).text();
      // What a browser submits: every ticked box on the page, plus one the operator ticks.
      const ticked = [...page.matchAll(/<input type="checkbox" name="roles" value="([^"]+)" checked/g)].map((m) => m[1]!);
      expect(ticked.sort()).toEqual([names[0]!, newest].sort());
      const res = await post(`/users/${user.id}/roles`, { _csrf: csrf, roles: [...ticked, names[1]!] }, cookie);
      expect(res.status).toBe(303);
      expect((await json(await admin("GET", `/users/${user.id}`))).roles).toEqual([names[0]!, names[1]!, newest].sort());
      // Unticking the unlisted role (its box is there, unticked) does remove it.
      const again = await (await get(`/users/${user.id}`, cookie)).text();
      expect(again).toContain(`value="${newest}" checked`);
      expect((await post(`/users/${user.id}/roles`, { _csrf: csrf, roles: [names[0]!] }, cookie)).status).toBe(303);
      expect((await json(await admin("GET", `/users/${user.id}`))).roles).toEqual([names[0]!]);
      await admin("DELETE", `/users/${user.id}`);
    } finally {
      // Leave the role list as other tests expect it (they look for their roles on its first page).
      if (names.length) await env.DB.prepare(`DELETE FROM roles WHERE name IN (SELECT value FROM json_each(?))`).bind(JSON.stringify(names)).run();
    }
  });
});
