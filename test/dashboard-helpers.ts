import { env, SELF } from "cloudflare:test";
import { expect } from "vitest";

/** The dashboard as the tests' browser-like requests reach it (the worker under test, in workerd). */
export const ORIGIN = "https://gateway.test";
export const UI = `${ORIGIN}/admin/ui`;

/** A browser-like form POST from the dashboard's own origin (or `origin`), from client address `ip` when given. */
export function post(path: string, fields: Record<string, string | string[]>, cookie?: string, origin = ORIGIN, ip?: string) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) for (const x of Array.isArray(v) ? v : [v]) body.append(k, x);
  return SELF.fetch(`${UI}${path}`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", origin, ...(cookie ? { cookie } : {}), ...(ip ? { "cf-connecting-ip": ip } : {}) },
    body,
  });
}

export const get = (path: string, cookie?: string) => SELF.fetch(`${UI}${path}`, { redirect: "manual", headers: cookie ? { cookie } : {} });

/** Signs in with the admin token; returns the session cookie (`name=value`) and the session's CSRF token. */
export async function signIn(ip?: string): Promise<{ cookie: string; csrf: string }> {
  const res = await post("/login", { token: env.ADMIN_TOKEN }, undefined, ORIGIN, ip);
  expect(res.status).toBe(303);
  const setCookie = res.headers.get("set-cookie") ?? "";
  const cookie = setCookie.split(";")[0]!;
  const page = await (await get("/users", cookie)).text();
  const csrf = /name="_csrf" value="([^"]+)"/.exec(page)?.[1];
  expect(csrf).toBeTruthy();
  return { cookie, csrf: csrf! };
}
