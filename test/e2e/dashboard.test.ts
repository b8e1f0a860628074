/// <reference lib="dom" />
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from "vitest";
import { clearOfHourEdge } from "../window-edges";
import { launchChromium, screenshot } from "./browser";
import { proxy, uniqueName } from "./cli";

const gatewayUrl = inject("gatewayUrl");
const adminToken = inject("adminToken");

let browser: Browser;
let context: BrowserContext;
let page: Page;

beforeAll(async () => {
  browser = await launchChromium();
  context = await browser.newContext({ viewport: { width: 1366, height: 860 } });
  page = await context.newPage();
  // Destructive buttons ask first; the operator says yes.
  page.on("dialog", (d) => void d.accept());
});
afterAll(async () => {
  await browser?.close();
});

describe("dashboard in a real browser", () => {
  it("signs in with the admin token using only the keyboard; the token ends up nowhere but the session cookie's MAC", async () => {
    await page.goto(`${gatewayUrl}/admin/ui/`);
    expect(new URL(page.url()).pathname).toBe("/admin/ui/login");
    await screenshot(page, "dashboard-sign-in");
    // The first Tab reaches the skip link; the field has focus already (autofocus).
    await page.getByLabel("Admin token").focus();
    await page.keyboard.type(adminToken);
    await page.keyboard.press("Enter");
    await page.waitForURL(/\/admin\/ui\/users$/);
    await expect(page.getByRole("heading", { name: "Proxy users" }).isVisible()).resolves.toBe(true);

    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: "portcullis_session", httpOnly: true, sameSite: "Strict", path: "/admin/ui" });
    expect(cookie!.value).not.toContain(adminToken);
    expect(page.url()).not.toContain(adminToken);
    expect(await page.content()).not.toContain(adminToken);
    // Script cannot read the session.
    expect(await page.evaluate(() => document.cookie)).toBe("");

    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Skip to content");
  });

  it("styles and scripts its pages from static files the asset layer serves, with nosniff and an ETag", async () => {
    for (const [file, type] of [
      ["style.css", "text/css"],
      ["app.js", "javascript"],
    ] as const) {
      const res = await fetch(`${gatewayUrl}/admin/ui/assets/${file}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain(type);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      expect(res.headers.get("etag")).toBeTruthy();
      const body = await res.text();
      expect(body).toContain(file === "style.css" ? "header.top" : "data-confirm");
    }
    // The asset layer's own rules file is read, not served: the path falls through to the Worker's 404 problem.
    const rules = await fetch(`${gatewayUrl}/_headers`);
    expect(rules.status).toBe(404);
    expect(rules.headers.get("content-type")).toContain("application/problem+json");
    expect(await rules.text()).not.toContain("nosniff");
    // The page the browser has open loaded both, and applies the stylesheet (the body colour is style.css's).
    expect(await page.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe("rgb(248, 250, 252)");
    const loaded = await page.evaluate(() => performance.getEntriesByType("resource").map((e) => e.name));
    expect(loaded).toEqual(expect.arrayContaining([`${gatewayUrl}/admin/ui/assets/style.css`, `${gatewayUrl}/admin/ui/assets/app.js`]));
  });

  it("creates a role and a user, issues a key shown once, uses it through the proxy, and revokes it", async () => {
    const role = uniqueName("web-role");
    await page.getByRole("link", { name: "Roles" }).click();
    await page.getByLabel("Name (required)").fill(role);
    await page.getByLabel("Description").fill("Read and write the echo API");
    await page.getByLabel("Permissions (comma or space separated)").fill("echo:read, echo:write");
    await page.getByRole("button", { name: "Create role" }).click();
    await page.getByRole("status").filter({ hasText: "Role created." }).waitFor();
    await screenshot(page, "dashboard-roles");

    const name = uniqueName("web-user");
    await page.getByRole("link", { name: "Proxy users" }).click();
    await page.getByLabel("Name (required)").fill(name);
    await page.getByLabel("Group", { exact: true }).last().fill("partner");
    await page.getByRole("checkbox", { name: role }).check();
    await page.getByRole("button", { name: "Create user" }).click();
    await page.waitForURL(/\/admin\/ui\/users\/usr_\w+\?notice=created$/);
    await expect(page.getByRole("heading", { level: 1 }).textContent()).resolves.toBe(name);

    await page.getByLabel("Label").fill("web-e2e");
    await page.getByRole("button", { name: "Issue key" }).click();
    const keyBox = page.locator("#new-key");
    const key = await keyBox.inputValue();
    expect(key).toMatch(/^pcl_/);
    await page.getByRole("button", { name: "Copy" }).click();
    // The click handler awaits the clipboard before it says so: wait for the text, don't race it.
    await page.locator("#new-key-status", { hasText: "Copied to the clipboard." }).waitFor();
    await screenshot(page, "dashboard-user-new-key");

    const res = await proxy(`/echo/web-${name}`, key);
    expect(res.status).toBe(200);
    const userPage = page.url().replace(/\/keys$/, "");
    const userId = /users\/(usr_\w+)/.exec(userPage)![1]!;

    // The request shows in the audit view (written asynchronously: reload until it is there)…
    await page.getByRole("link", { name: "Request audit" }).click();
    await page.getByLabel("User id").fill(userId);
    await page.getByRole("button", { name: "Filter" }).click();
    const row = page.getByRole("table", { name: "Request events" }).getByRole("row", { name: new RegExp(`GET /echo/web-${name}`) });
    for (let i = 0; i < 40 && !(await row.count()); i++) {
      await page.waitForTimeout(500);
      await page.reload();
    }
    await expect(row.textContent()).resolves.toMatch(/200.*allowed/);
    await screenshot(page, "dashboard-request-audit");

    // …and in the user's usage chart.
    await page.goto(`${userPage}?range=1h`);
    const chart = page.locator("svg#user-status");
    await expect(chart.getAttribute("aria-label")).resolves.toMatch(/^Requests by status class: 1 in 60 buckets; 2xx 1,/);
    await page.getByRole("link", { name: "Usage" }).click();
    await page.getByLabel("Time range", { exact: true }).selectOption("1h");
    await page.getByRole("button", { name: "Show" }).click();
    await expect(page.locator("svg#top-users").getAttribute("aria-label")).resolves.toContain(name);
    await screenshot(page, "dashboard-usage");
    await page.goto(userPage);

    // Reloading the user page never shows the key again.
    expect(await page.content()).not.toContain(key);
    await page.getByRole("button", { name: /^Revoke key / }).click();
    await page.waitForURL(/notice=revoked/);
    await expect(page.getByRole("table", { name: "Keys" }).textContent()).resolves.toContain("revoked");
    expect((await proxy(`/echo/web-${name}`, key)).status).toBe(401);
  });

  it("lists and filters users", async () => {
    await page.goto(`${gatewayUrl}/admin/ui/users`);
    await page.getByLabel("Status").selectOption("active");
    await page.getByLabel("Name contains").fill("web-user");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/search=web-user/);
    const rows = await page.getByRole("table", { name: "Proxy users" }).locator("tbody tr").count();
    expect(rows).toBeGreaterThanOrEqual(1);
    await screenshot(page, "dashboard-users");
  });

  describe("limits", () => {
    // Spends a monthly quota through the proxy: never across an hour edge (test/window-edges.ts).
    beforeEach(() => clearOfHourEdge(60_000), 70_000);

    it("sets a user's quota on its page, shows the usage of requests through the proxy, and resets it to zero", async () => {
      // A caller to limit (set up through the admin API: this test is about the limits section).
      const api = async (method: string, p: string, body?: unknown) => {
        const res = await fetch(`${gatewayUrl}/admin/v1${p}`, { method, headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
        expect(res.status, `${method} ${p}`).toBeLessThan(300);
        return res.json() as Promise<any>;
      };
      const role = await api("POST", "/roles", { name: uniqueName("web-quota-role"), permissions: ["echo:read"] });
      const user = await api("POST", "/users", { name: uniqueName("web-quota-user"), group: "partner", roles: [role.name] });
      const { key } = await api("POST", `/users/${user.id}/keys`, { name: "quota-e2e" });

      await page.goto(`${gatewayUrl}/admin/ui/users/${user.id}`);
      const section = page.locator('section[aria-labelledby="limits"]');
      const monthly = section.locator('tr[data-limit="monthly"]');
      await expect(monthly.textContent()).resolves.toMatch(/5\s*\(route default\)\s*0\s*5/);

      // The operator lowers this user's monthly quota to 3 — a labelled field, found by its label.
      await page.getByLabel(/^monthly \(per month, default 5\)$/).fill("3");
      await page.getByRole("button", { name: "Save overrides" }).click();
      await page.waitForURL(/notice=limits#limits$/);
      await page.getByRole("status").filter({ hasText: "Limit overrides saved." }).waitFor();
      await expect(monthly.textContent()).resolves.toMatch(/3\s*\(user override\)\s*0\s*3/);

      // Requests through the proxy with the user's key spend it; the page shows what is left.
      for (let i = 0; i < 3; i++) expect((await proxy(`/quota-do/web-${i}`, key)).status).toBe(200);
      const refused = await proxy("/quota-do/web-over", key);
      expect(refused.status).toBe(429);
      expect(await refused.json()).toMatchObject({ code: "QUOTA_EXCEEDED" });
      await page.reload();
      await expect(monthly.textContent()).resolves.toMatch(/3\s*\(user override\)\s*3\s*0 — spent/);
      await screenshot(section, "dashboard-user-limits");

      // Reset: usage back to zero, and the key gets through again.
      await page.getByRole("button", { name: "Reset usage of monthly", exact: true }).click();
      await page.waitForURL(/\?notice=limits-reset&reset=monthly#limits$/);
      await expect(page.locator("p.notice").textContent()).resolves.toBe("Usage reset: monthly.");
      await expect(monthly.textContent()).resolves.toMatch(/3\s*\(user override\)\s*0\s*3/);
      expect((await proxy("/quota-do/web-after-reset", key)).status).toBe(200);

      // Both changes are in the admin audit, made by the dashboard.
      const events = await api("GET", `/audit/admin?targetId=${user.id}`);
      expect(events.data.filter((e: any) => e.actor === "admin-ui").map((e: any) => e.action)).toEqual(["user.limits.reset", "user.limits.set"]);

      // This gateway's Upstash-backed quota points at a closed port (its row already reads
      // "unavailable"): resetting every quota resets the others and says which one it could not.
      await expect(section.locator('tr[data-limit="monthly-up"]').textContent()).resolves.toContain("unavailable");
      for (let i = 0; i < 2; i++) expect((await proxy(`/quota-do/web-again-${i}`, key)).status).toBe(200);
      await page.getByRole("button", { name: "Reset quota usage" }).click();
      await page.waitForURL(/\?notice=limits-reset&reset=monthly&unavailable=monthly-up&reset=both-quota#limits$/);
      await expect(page.locator("p.notice").textContent()).resolves.toBe("Usage reset: monthly, both-quota.");
      await expect(page.getByRole("alert").textContent()).resolves.toBe("Not reset: monthly-up — the limiter backend did not answer. Try again shortly.");
      await expect(monthly.textContent()).resolves.toMatch(/3\s*\(user override\)\s*0\s*3/);
    });
  });

  it("signs out server-side: a copy of the session cookie no longer works", async () => {
    const copied = await context.cookies();
    expect(copied.map((c) => c.name)).toEqual(["portcullis_session"]);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/admin\/ui\/login$/);
    await page.goto(`${gatewayUrl}/admin/ui/users`);
    expect(new URL(page.url()).pathname).toBe("/admin/ui/login");

    // Another browser holding the copied cookie is signed out too.
    const thief = await browser.newContext();
    await thief.addCookies(copied);
    const other = await thief.newPage();
    await other.goto(`${gatewayUrl}/admin/ui/users`);
    expect(new URL(other.url()).pathname).toBe("/admin/ui/login");
    await thief.close();
  });
});
