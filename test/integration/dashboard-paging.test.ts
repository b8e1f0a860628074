import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createDb } from "../../worker/db";
import * as keys from "../../worker/services/keys";
import * as roles from "../../worker/services/roles";
import { get, signIn } from "../dashboard-helpers";
import { admin, json, seedCaller, unique } from "../helpers";

/**
 * The user page showed a user's first 100 keys and every form the first 100 roles. A rotation's
 * successor is the newest key, so past 100 keys it was on no page, and the superseded key (on the
 * first page) still offered Rotate, which only earned a 409. Roles past the first 100 could not
 * be granted from the dashboard at all.
 */
const who = { actor: "admin-token", requestId: "req_dashboard_paging" };
const db = () => createDb(env.DB);
const rotateForm = (keyId: string) => `/keys/${keyId}/rotate"`;

describe("a user with more keys than a page", () => {
  it("marks the rotated key on page 1 (no Rotate) although its successor is on page 2, which the pager reaches", async () => {
    const { cookie } = await signIn();
    const { keyId, user } = await seedCaller();
    for (let i = 0; i < 100; i++) await keys.issueKey(db(), who, user.id, { name: `filler-${i}` });
    const rotated = await admin("POST", `/keys/${keyId}/rotate`, { gracePeriodSeconds: 3600 });
    expect(rotated.status).toBe(201);
    const successor = await json(rotated);

    // The admin API says which key replaced which, wherever each one is listed.
    expect((await json(await admin("GET", `/keys/${keyId}`))).rotatedTo).toBe(successor.id);
    expect(successor.previous.rotatedTo).toBe(successor.id);
    expect(successor.rotatedTo).toBeNull();
    const firstPage = await json(await admin("GET", `/users/${user.id}/keys?limit=100`));
    expect(firstPage.data.find((k: { id: string }) => k.id === keyId).rotatedTo).toBe(successor.id);
    expect(firstPage.data.some((k: { id: string }) => k.id === successor.id)).toBe(false);

    const page1 = await (await get(`/users/${user.id}`, cookie)).text();
    expect(page1).toContain(`/keys/${keyId}/revoke"`);
    expect(page1).not.toContain(rotateForm(keyId));
    expect(page1).toContain("(rotated)");
    expect(page1).not.toContain(rotateForm(successor.id));
    const more = /href="([^"]*\?keys=[^"#]+)#keys"/.exec(page1)?.[1];
    expect(more).toBeTruthy();

    const page2Res = await get(more!.replace(/^\/admin\/ui/, "").replaceAll("&amp;", "&"), cookie);
    expect(page2Res.status).toBe(200);
    const page2 = await page2Res.text();
    expect(page2).toContain(rotateForm(successor.id));
    expect(page2).not.toContain(`/keys/${keyId}/revoke"`);
    expect(page2).toContain("First keys");
  });
});

describe("more roles than a page", () => {
  it("the create-user form and the user page offer every role, including the 101st", async () => {
    const { cookie } = await signIn();
    const { user } = await seedCaller();
    for (let i = 0; i < 100; i++) await roles.createRole(db(), who, { name: unique(`bulk${i}`), permissions: ["echo:read"] });
    const late = await roles.createRole(db(), who, { name: unique("late"), permissions: ["echo:list"] });

    const usersPage = await (await get("/users", cookie)).text();
    expect(usersPage).toContain(`name="roles" value="${late.name}"`);
    const userPage = await (await get(`/users/${user.id}`, cookie)).text();
    expect(userPage).toContain(`name="roles" value="${late.name}"`);
    expect(userPage).toContain("(echo:list)");
  });
});
