import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { eventsFor } from "../audit-helpers";
import { gw, seedCaller, unique } from "../helpers";

const ORIGIN = "https://gateway.test";

async function session(): Promise<string> {
  const res = await SELF.fetch(`${ORIGIN}/admin/ui/login`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", origin: ORIGIN },
    body: new URLSearchParams({ token: env.ADMIN_TOKEN }),
  });
  return (res.headers.get("set-cookie") ?? "").split(";")[0]!;
}
const page = async (path: string, cookie: string) => {
  const res = await SELF.fetch(`${ORIGIN}/admin/ui${path}`, { redirect: "manual", headers: { cookie } });
  expect(res.status).toBe(200);
  return res.text();
};

describe("dashboard secrets page", () => {
  it("lists secrets by name, binding and version, never the value", async () => {
    const name = `DASH_${Date.now().toString(36).toUpperCase()}`;
    const value = "dashboard-secret-value-must-not-show";
    const { user } = await seedCaller();
    for (const body of [{ value }, { value: `${value}-2` }, { value: `${value}-u`, userId: user.id }]) {
      const res = await SELF.fetch(`${ORIGIN}/admin/v1/secrets/${name}`, { method: "PUT", headers: { authorization: `Bearer ${env.ADMIN_TOKEN}`, "content-type": "application/json" }, body: JSON.stringify(body) });
      expect(res.status).toBe(200);
    }
    const html = await page("/secrets", await session());
    expect(html).toMatch(new RegExp(`<td class="mono">${name}</td><td>global</td><td>all users</td><td>2</td>`));
    expect(html).toMatch(new RegExp(`<td class="mono">${name}</td><td>user</td><td><a href="/admin/ui/users/${user.id}">${user.id}</a></td><td>1</td>`));
    expect(html).not.toContain(value);
  });
});

describe("dashboard audit and usage pages", () => {
  it("lists a user's requests with filters, and the admin changes with their actor", async () => {
    const { user, key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("dash-aud");
    expect((await gw(`/echo/${marker}`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    expect((await gw(`/echo-write/${marker}`, { method: "POST", headers: { authorization: `Bearer ${key}` } })).status).toBe(403);
    // A rate limit whose Upstash backend refuses connections: let through, fail-open.
    expect((await gw(`/fail-up-down-open/${marker}`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    await eventsFor(marker, 3);
    const cookie = await session();

    const all = await page(`/audit/requests?userId=${user.id}`, cookie);
    expect(all).toContain(`GET /echo/${marker}`);
    expect(all).toContain(`POST /echo-write/${marker}`);
    expect(all).toContain("authorize:FORBIDDEN");
    expect(all).not.toContain(key);
    const refused = await page(`/audit/requests?userId=${user.id}&decision=refused`, cookie);
    expect(refused).toContain(`POST /echo-write/${marker}`);
    expect(refused).not.toContain(`GET /echo/${marker}`);
    const failOpen = await page(`/audit/requests?userId=${user.id}&limitOutcome=fail-open`, cookie);
    expect(failOpen).toContain(`GET /fail-up-down-open/${marker}`);
    expect(failOpen).not.toContain(`GET /echo/${marker}`);
    expect(failOpen).toMatch(/<option value="fail-open" selected(="")?>fail-open<\/option>/);

    const adminEvents = await page(`/audit/admin?targetId=${user.id}`, cookie);
    expect(adminEvents).toContain("user.create");
    expect(adminEvents).toContain("admin-token");
  });

  it("draws usage as SVG charts on the usage page and on the user's page", async () => {
    const { user, key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("dash-use");
    for (let i = 0; i < 3; i++) await gw(`/echo/${marker}/${i}`, { headers: { authorization: `Bearer ${key}` } });
    await eventsFor(marker, 3);
    const cookie = await session();
    const usage = await page("/usage?range=1h", cookie);
    expect(usage).toMatch(/<svg id="all-status" viewBox="0 0 560 240" width="100%" role="img" aria-label="Requests by status class: \d+ in 60 buckets; 2xx \d+/);
    expect(usage).toContain('id="all-latency"');
    expect(usage).toMatch(new RegExp(`aria-label="Top proxy users by requests: [^"]*${user.name} 3`));
    const detail = await page(`/users/${user.id}?range=1h`, cookie);
    expect(detail).toMatch(/aria-label="Requests by status class: 3 in 60 buckets; 2xx 3, 3xx 0, 4xx 0, 5xx 0, 1xx 0\."/);
  });
});
