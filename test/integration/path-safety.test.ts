import { describe, expect, it } from "vitest";
import { expectProblem, gw, json, originRecords, seedCaller, unique } from "../helpers";

describe("path escapes never reach the origin", () => {
  // Each raw path is sent as-is (the client-side URL parser keeps these encodings). The gateway
  // must refuse before authorization; the marker proves the origin saw nothing.
  const attacks = [
    "/echo/MARK/..%2f..%2fadmin",
    "/echo/MARK/%2E%2E%2Fadmin",
    "/echo/MARK/..%5c..%5cadmin",
    "/echo/MARK//evil.example/x",
    "/echo//MARK/x",
    "/echo/MARK/x;jsessionid=1",
    "/echo/MARK/..;/admin",
    "/echo/MARK/%00",
    "/echo/MARK/%252e%252e/admin",
    "/echo/MARK/%2fetc%2fpasswd",
    // Not escapes at all: IIS's %u form ("." and "∕"), nibble double-encoding (%%32%65 and
    // %2%65 decode to %2e on a second pass), a bare or truncated %.
    "/echo/MARK/%u002e%u002e/%u002e%u002e/admin",
    "/echo/MARK/%U002E%U002E/admin",
    "/echo/MARK/..%u2215..%u2215admin",
    "/echo/MARK/%%32%65%%32%65/admin",
    "/echo/MARK/%2%65%2%65/admin",
    "/echo/MARK/%/x",
    "/echo/MARK/x%",
    "/echo/MARK/x%4",
    "/echo/MARK/%zz",
    // 5- and 6-byte overlong forms (and the other bytes that never start UTF-8).
    "/echo/MARK/%f8%80%80%80%ae",
    "/echo/MARK/%FC%80%80%80%80%AF",
    "/echo/MARK/%f5%80%80%80",
    "/echo/MARK/%Ff",
  ];

  it.each(attacks)("refuses %s with 400 PATH_INVALID", async (template) => {
    const { key } = await seedCaller({ permissions: ["*"] });
    const m = unique("esc");
    const res = await gw(template.replace("MARK", m), { headers: { authorization: `Bearer ${key}` } });
    await expectProblem(res, 400, "PATH_INVALID");
    expect(await originRecords(m)).toHaveLength(0);
  });

  it("refuses before authentication too (no key needed to be refused, nothing forwarded)", async () => {
    const m = unique("esc-noauth");
    await expectProblem(await gw(`/echo/${m}/..%2fx`), 400, "PATH_INVALID");
    expect(await originRecords(m)).toHaveLength(0);
  });

  it("plain dot segments are normalized first, then authorized on the canonical path", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("dots");
    // The URL parser resolves ../ before the request exists; the result is authorized as /echo/<m>/y.
    const res = await gw(`/echo/${m}/x/../y`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(200);
    expect((await json(res)).url).toBe(`/${m}/y`);
    // Climbing out of /echo lands on an unrouted path: 404, never forwarded.
    const out = await gw(`/echo/../admin/v1/users`, { headers: { authorization: `Bearer ${key}` } });
    await expectProblem(out, 401, "ADMIN_UNAUTHORIZED");
    const [rec] = await originRecords(m);
    expect(rec!.url).toBe(`/${m}/y`);
  });

  it.each(["/echo/MARK/%2e%2e/%2e%2e/admin", "/echo/MARK/.%2e/admin", "/echo/MARK/%2E%2e/x"])(
    "encoded dot segments (%s) are resolved by URL parsing before routing and authorized on the result",
    async (template) => {
      // WHATWG URL parsing (the client's and workerd's) treats %2e%2e as "..", so these arrive
      // already resolved. Whatever they resolve to is routed and authorized as such.
      const { key } = await seedCaller({ permissions: ["echo:read"] });
      const m = unique("encdot");
      const res = await gw(template.replace("MARK", m), { headers: { authorization: `Bearer ${key}` } });
      expect(await originRecords(m)).toHaveLength(0);
      if (res.status === 200) expect((await json(res)).url).not.toContain("..");
      else expect([400, 404]).toContain(res.status);
    },
  );

  it("remainders that look like authorities stay on the origin", async () => {
    const { key } = await seedCaller({ permissions: ["*"] });
    const m = unique("auth");
    const res = await gw(`/echo/@evil.example/${m}`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(200);
    const [rec] = await originRecords(m);
    expect(rec!.url).toBe(`/@evil.example/${m}`);
    expect(rec!.headers.host).toMatch(/^127\.0\.0\.1:/);
  });
});
