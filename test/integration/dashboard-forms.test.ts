// The dashboard's user and role forms are judged by the admin API's own zod schemas: what the API
// refuses, the form refuses — answered with the page itself (400, or 409 for a taken name), the
// problem beside its field, what the operator typed kept, and nothing stored or audited.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { post, signIn } from "../dashboard-helpers";
import { admin, json, seedCaller, unique } from "../helpers";

/** The `<input …>` tag with this id (attributes in any order). */
function inputTag(html: string, id: string): string {
  const tag = new RegExp(`<input id="${id}"[^>]*>`).exec(html)?.[0];
  expect(tag, `input #${id}`).toBeDefined();
  return tag!;
}
/** The problem shown beside the field `id`, or undefined. */
const fieldError = (html: string, id: string) => new RegExp(`<span id="${id}-error" class="field-error">([^<]*)</span>`).exec(html)?.[1];
const unescape = (s: string | undefined) => s?.replaceAll("&quot;", '"').replaceAll("&#39;", "'").replaceAll("&amp;", "&");

/** A refused form's answer: the page itself, in HTML, with the summary in an alert. */
async function refusedPage(res: Response, status: number, summary: RegExp): Promise<string> {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^text\/html/);
  expect(res.headers.get("cache-control")).toBe("no-store");
  const html = await res.text();
  expect(unescape(/<p class="error" role="alert">([^<]*)<\/p>/.exec(html)?.[1])).toMatch(summary);
  return html;
}

/** How many rows of `table` have this name (read from D1 itself, not through a filter that validates it). */
async function rowsNamed(table: "proxy_users" | "roles", name: string): Promise<number> {
  return (await env.DB.prepare(`SELECT count(*) AS n FROM ${table} WHERE name = ?`).bind(name).first<{ n: number }>())!.n;
}

/** Admin audit rows naming `text` anywhere (a refused form must leave none). */
async function auditRowsMentioning(text: string) {
  const rows = await env.DB.prepare("SELECT action FROM admin_audit WHERE instr(coalesce(before, ''), ?1) > 0 OR instr(coalesce(after, ''), ?1) > 0").bind(text).all();
  return rows.results;
}

describe("dashboard: the create-user form validates like POST /admin/v1/users", () => {
  it("refuses a bad name, group or role with 400 beside the field, keeps what was typed, stores nothing — as the API does", async () => {
    const { cookie, csrf } = await signIn();
    const { role } = await seedCaller({ permissions: ["echo:read"] });
    const good = { name: unique("ui-ok"), group: "partner", description: "Billing team", roles: [role.name] };
    const cases: Array<[string, Record<string, string | string[]>, "name" | "group" | "roles", RegExp]> = [
      ["a name with a space", { name: "acme partner" }, "name", /^1–64 chars: letters, digits, _ \. @ : -$/],
      ["a name starting with a dot", { name: ".hidden" }, "name", /^1–64 chars/],
      ["a name over 64 characters", { name: `a${"b".repeat(64)}` }, "name", /^1–64 chars/],
      ["a group with a slash", { group: "partners/eu" }, "group", /./],
      ["a role that does not exist", { roles: [role.name, "no-such-role-x1"] }, "roles", /^unknown role "no-such-role-x1"$/],
    ];
    for (const [what, change, field, message] of cases) {
      const fields = { ...good, name: unique("ui-bad"), ...change };
      const html = await refusedPage(await post("/users", { ...fields, _csrf: csrf }, cookie), 400, /^The proxy user was not created\. /);
      // Beside the field: the same message the admin API gives for the same body.
      const id = { name: "u-name", group: "u-group", roles: "u-roles" }[field];
      expect(unescape(fieldError(html, id)), what).toMatch(message);
      if (field !== "roles") expect(inputTag(html, id), what).toMatch(/ aria-invalid="true"/);
      if (field !== "roles") expect(inputTag(html, id), what).toContain(`aria-describedby="${id}-error"`);
      // What was typed is still there, the role boxes still ticked.
      expect(unescape(/ value="([^"]*)"/.exec(inputTag(html, "u-name"))?.[1]), what).toBe(fields.name);
      expect(unescape(/ value="([^"]*)"/.exec(inputTag(html, "u-group"))?.[1]), what).toBe(fields.group);
      expect(unescape(/ value="([^"]*)"/.exec(inputTag(html, "u-desc"))?.[1]), what).toBe("Billing team");
      expect(html, what).toMatch(new RegExp(`<input type="checkbox" name="roles" value="${role.name}" checked=""`));
      // Nothing stored, nothing audited.
      const name = fields.name as string;
      expect(await rowsNamed("proxy_users", name), what).toBe(0);
      expect(await auditRowsMentioning(name), what).toEqual([]);

      // The admin API refuses the same body, naming the same field.
      const api = await admin("POST", "/users", { ...fields, description: "Billing team" });
      expect(api.status, what).toBe(400);
      expect((await json(api)).errors.map((e: { path: string }) => e.path.split(".")[0]), what).toContain(field);
    }
    // The same form with good values creates the user.
    const created = await post("/users", { ...good, _csrf: csrf }, cookie);
    expect(created.status).toBe(303);
    expect((await json(await admin("GET", `/users?name=${good.name}`))).data[0]).toMatchObject({ name: good.name, group: "partner", description: "Billing team", roles: [role.name] });
    expect(await auditRowsMentioning(good.name)).toEqual([{ action: "user.create" }]);
  });

  it("answers a taken name with 409 beside the name field, keeps what was typed and changes nothing", async () => {
    const { cookie, csrf } = await signIn();
    const name = unique("ui-dup");
    expect((await post("/users", { name, group: "qa", _csrf: csrf }, cookie)).status).toBe(303);
    const html = await refusedPage(await post("/users", { name, group: "partner", description: "second", _csrf: csrf }, cookie), 409, /^The proxy user was not created\. A proxy user named "[^"]+" already exists\.$/);
    expect(unescape(fieldError(html, "u-name"))).toBe(`A proxy user named "${name}" already exists.`);
    expect(inputTag(html, "u-name")).toMatch(new RegExp(`value="${name}"[^>]* aria-invalid="true"`));
    expect(inputTag(html, "u-group")).toContain('value="partner"');
    expect(inputTag(html, "u-desc")).toContain('value="second"');
    const users = (await json(await admin("GET", `/users?name=${name}`))).data;
    expect(users).toHaveLength(1);
    expect(users[0]).toMatchObject({ group: "qa", description: null });
    // The API answers the same body with the same conflict.
    expect((await json(await admin("POST", "/users", { name }))).code).toBe("CONFLICT");
  });
});

describe("dashboard: the user page's roles form validates like PATCH /admin/v1/users/{id}", () => {
  it("refuses a role that does not exist with 400 beside the roles, keeps the ticked boxes and changes nothing", async () => {
    const { cookie, csrf } = await signIn();
    const { user, role } = await seedCaller({ permissions: ["echo:read"] });
    const other = await json(await admin("POST", "/roles", { name: unique("ui-other"), permissions: [] }));
    const res = await post(`/users/${user.id}/roles`, { roles: [other.name, "no-such-role-x2"], _csrf: csrf }, cookie);
    const html = await refusedPage(res, 400, /^The roles were not saved\. Unknown role\(s\): no-such-role-x2\.$/);
    expect(unescape(fieldError(html, "user-roles"))).toBe('unknown role "no-such-role-x2"');
    // The boxes show what was sent, not what is stored.
    expect(html).toMatch(new RegExp(`<input type="checkbox" name="roles" value="${other.name}" checked=""`));
    expect(html).not.toMatch(new RegExp(`<input type="checkbox" name="roles" value="${role.name}" checked=""`));
    expect((await json(await admin("GET", `/users/${user.id}`))).roles).toEqual([role.name]);
    // A role name the schema refuses outright.
    const bad = await refusedPage(await post(`/users/${user.id}/roles`, { roles: ["bad role"], _csrf: csrf }, cookie), 400, /^The roles were not saved\. roles\.0: /);
    expect(fieldError(bad, "user-roles")).toBeDefined();
    expect((await json(await admin("GET", `/users/${user.id}`))).roles).toEqual([role.name]);
  });
});

describe("dashboard: the roles forms validate like POST and PATCH /admin/v1/roles", () => {
  it("refuses a bad name or permission on create with 400 beside the field, quoting the bad permission, and stores nothing", async () => {
    const { cookie, csrf } = await signIn();
    const cases: Array<[string, Record<string, string>, "name" | "permissions" | "description", RegExp]> = [
      ["a name with a space", { name: "orders reader" }, "name", /^1–64 chars: letters, digits, _ \. @ : -$/],
      ["a permission with a bad character", { permissions: "orders:read, orders:wr!te" }, "permissions", /^"orders:wr!te": permission strings use letters, digits, _ \. : - \/ and \* wildcards$/],
      ["a permission over 128 characters", { permissions: `echo:read ${"x".repeat(129)}` }, "permissions", /^"x{129}": permission strings/],
      ["a description over 500 characters", { description: "d".repeat(501) }, "description", /500/],
    ];
    for (const [what, change, field, message] of cases) {
      const fields = { name: unique("ui-role-bad"), description: "Reads orders", permissions: "orders:read", ...change };
      const html = await refusedPage(await post("/roles", { ...fields, _csrf: csrf }, cookie), 400, /^The role was not created\. /);
      const id = { name: "r-name", permissions: "r-perms", description: "r-desc" }[field];
      expect(unescape(fieldError(html, id)), what).toMatch(message);
      expect(inputTag(html, id), what).toMatch(/ aria-invalid="true"/);
      for (const [f, i] of [["name", "r-name"], ["description", "r-desc"], ["permissions", "r-perms"]] as const) {
        expect(unescape(/ value="([^"]*)"/.exec(inputTag(html, i))?.[1]), `${what}: ${f} kept`).toBe(fields[f]);
      }
      expect(await rowsNamed("roles", fields.name), what).toBe(0);
      expect(await auditRowsMentioning(fields.name), what).toEqual([]);
      // The admin API refuses the same body, naming the same field.
      const api = await admin("POST", "/roles", { name: fields.name, description: fields.description, permissions: fields.permissions.split(/[\s,]+/).filter(Boolean) });
      expect(api.status, what).toBe(400);
      expect((await json(api)).errors.map((e: { path: string }) => e.path.split(".")[0]), what).toContain(field);
    }
  });

  it("answers a taken role name with 409 beside the name field and changes nothing", async () => {
    const { cookie, csrf } = await signIn();
    const name = unique("ui-role-dup");
    expect((await post("/roles", { name, permissions: "echo:read", _csrf: csrf }, cookie)).status).toBe(303);
    const html = await refusedPage(await post("/roles", { name, permissions: "echo:*", _csrf: csrf }, cookie), 409, /^The role was not created\. A role named "[^"]+" already exists\.$/);
    expect(unescape(fieldError(html, "r-name"))).toBe(`A role named "${name}" already exists.`);
    expect(inputTag(html, "r-perms")).toContain('value="echo:*"');
    const roles = (await json(await admin("GET", `/roles?name=${name}`))).data;
    expect(roles).toHaveLength(1);
    expect(roles[0].permissions).toEqual(["echo:read"]);
  });

  it("refuses a bad permission when editing a role: 400 beside that role's field, the typed text kept, the role unchanged", async () => {
    const { cookie, csrf } = await signIn();
    const role = await json(await admin("POST", "/roles", { name: unique("ui-role-edit"), permissions: ["echo:read"] }));
    const typed = "echo:read, echo:wr ite!, echo:*";
    const html = await refusedPage(await post(`/roles/${role.id}`, { permissions: typed, _csrf: csrf }, cookie), 400, /^The permissions were not saved\. permissions\.2: /);
    // "echo:wr ite!" is two strings once split: the second one, "ite!", is the bad one.
    expect(unescape(fieldError(html, `perms-${role.id}`))).toBe('"ite!": permission strings use letters, digits, _ . : - / and * wildcards');
    const tag = inputTag(html, `perms-${role.id}`);
    expect(unescape(/ value="([^"]*)"/.exec(tag)?.[1])).toBe(typed);
    expect(tag).toContain(`aria-describedby="perms-${role.id}-error"`);
    expect((await json(await admin("GET", `/roles/${role.id}`))).permissions).toEqual(["echo:read"]);
    expect((await env.DB.prepare("SELECT count(*) AS n FROM admin_audit WHERE target_id = ? AND action = 'role.update'").bind(role.id).first<{ n: number }>())!.n).toBe(0);
    // Good input still saves.
    expect((await post(`/roles/${role.id}`, { permissions: "echo:read echo:write", _csrf: csrf }, cookie)).status).toBe(303);
    expect((await json(await admin("GET", `/roles/${role.id}`))).permissions).toEqual(["echo:read", "echo:write"]);
  });
});
