import { env } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { hashApiKey } from "../../worker/lib/api-key";
import { waitForEvents } from "../audit-helpers";
import { admin, gw, seedCaller, unique } from "../helpers";

const logged: string[] = [];
beforeEach(() => {
  logged.length = 0;
  for (const level of ["log", "info", "warn", "error", "debug"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      logged.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
    });
  }
});
afterEach(() => vi.restoreAllMocks());

describe("keys never leak", () => {
  it("no response (except the one issuing it), log line or audit row contains a key or its hash", async () => {
    const { user, key, keyId } = await seedCaller({ permissions: ["echo:read"] });
    const hash = await hashApiKey(key);
    const texts: string[] = [];
    const record = async (res: Response) => {
      texts.push(await res.text(), JSON.stringify([...res.headers]));
      return res;
    };
    const m = unique("leak");
    // Success, every refusal path, and every admin read of the key.
    await record(await gw(`/echo/${m}`, { headers: { authorization: `Bearer ${key}` } }));
    await record(await gw(`/echo-write/${m}`, { method: "POST", headers: { authorization: `Bearer ${key}` }, body: key }));
    await record(await gw(`/echo/${m}`, { headers: { authorization: `Bearer ${key}x` } }));
    await record(await gw(`/echo/${m}`, { headers: { authorization: `Bearer ${key}`, "x-api-key": `${key.slice(0, -1)}Z` } }));
    await record(await gw(`/nope/${key}`, { headers: { authorization: `Bearer ${key}` } }));
    await record(await gw(`/echo/${m}/..%2f${key}`, { headers: { authorization: `Bearer ${key}` } }));
    await record(await admin("GET", `/users/${user.id}/keys`));
    await record(await admin("GET", `/keys/${keyId}`));
    const rotated = await admin("POST", `/keys/${keyId}/rotate`, { gracePeriodSeconds: 0 });
    const rotatedBody = (await rotated.json()) as { key: string };
    await record(await admin("POST", `/keys/${keyId}/revoke`));
    await record(await gw(`/echo/${m}`, { headers: { authorization: `Bearer ${key}` } }));
    await record(await admin("DELETE", `/users/${user.id}`));
    await record(await admin("POST", "/users", { name: unique("x"), metadata: { note: "no secrets here" }, secret: key }));

    const { results } = await env.DB.prepare("SELECT * FROM admin_audit").all();
    // Request audit events of this test's requests (they land asynchronously, batched).
    const events = await waitForEvents("path LIKE ? OR path LIKE '/nope/%'", [`%${m}%`], 7);
    const audit = JSON.stringify([results, events]);
    expect(audit).toContain(keyId); // the audit trail is about this key…
    for (const [what, haystack] of [
      ["responses", texts.join("\n")],
      ["logs", logged.join("\n")],
      ["audit", audit],
    ] as const) {
      // The recording origin echoes the headers it received in its body, origin credential
      // included: that is the origin's own doing, so the origin token is checked in logs and audit only.
      const secrets = [key, hash, rotatedBody.key, await hashApiKey(rotatedBody.key), env.ADMIN_TOKEN, ...(what === "responses" ? [] : [env.ECHO_ORIGIN_TOKEN])];
      for (const secret of secrets) {
        expect(haystack.includes(secret), `${what} contain a secret: ${secret.slice(0, 6)} at ${haystack.indexOf(secret)} ${haystack.slice(Math.max(0, haystack.indexOf(secret) - 200), haystack.indexOf(secret))}`).toBe(false);
      }
    }
    // …and the refusals were logged with a reason, for the operator.
    expect(logged.some((l) => l.includes('"msg":"key refused"') && l.includes('"reason":"key_revoked"') && l.includes(keyId))).toBe(true);
    expect(logged.some((l) => l.includes('"reason":"malformed"'))).toBe(true);
  });
});
