/// <reference lib="dom" />
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
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

  it("signs out", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/admin\/ui\/login$/);
    await page.goto(`${gatewayUrl}/admin/ui/users`);
    expect(new URL(page.url()).pathname).toBe("/admin/ui/login");
  });
});
