import { beforeAll, describe, expect, it } from "vitest";
import { checkRawPath, raw, rawOriginRecords, seedRawCaller, sendMarked, sendRaw } from "./raw";

/**
 * Path-normalization attacks over a real socket. Every case is sent byte for byte to workerd's
 * own socket (`direct`: the worker sees what workerd's HTTP parser made of it) and to
 * Miniflare's dev entry (`entry`: a WHATWG re-parse first, like most clients and proxies).
 *
 * The property, for each (case, port): the gateway either refuses the path (400 PATH_INVALID, or
 * a bare 400 from workerd's own parser), or it behaves exactly as it does for the canonical path
 * (WHATWG resolution of the same target) — same status, and the origin receives exactly the
 * canonical path, under the upstream's prefix. Nothing the route table does not allow reaches
 * the origin. The marker travels in the query, which path normalization never touches.
 */

let key: string;
let seq = 0;
beforeAll(async () => {
  // echo:read only: climbing into /echo-write, /admin or another route must not be allowed.
  key = await seedRawCaller(["echo:read"]);
});
const checkPath = (port: number, target: string, withKey = true) => checkRawPath(port, target, withKey ? key : undefined);
const send = (port: number, target: string, withKey = true) => sendMarked(port, target, withKey ? key : undefined);

const ports = () => [
  ["direct", raw.direct],
  ["entry", raw.entry],
] as const;

describe("path normalization over a real socket: refused, or authorized on the canonical path", () => {
  // [target, what workerd's own socket must do, what Miniflare's entry must do]
  const cases: Array<[string, "refused" | "canonical", "refused" | "canonical"]> = [
    ["/echo/a/..%2f..%2fadmin/v1/users", "refused", "refused"],
    ["/echo/a/..%2F..%2Fadmin", "refused", "refused"],
    ["/echo/a/%2e%2e/%2e%2e/admin/v1/users", "refused", "canonical"],
    ["/echo/a/%2E%2E/b", "refused", "canonical"],
    ["/echo/a/.%2e/b", "refused", "canonical"],
    ["/echo/a/%2e/b", "refused", "canonical"],
    ["/echo/a/..\\..\\admin/v1/users", "refused", "canonical"],
    ["/echo/a\\b", "refused", "canonical"],
    // workerd resolves `..` before it looks at `\` (an ordinary character to it): these reach the
    // worker as /echo/, /echo/x/ and / (fast-check found the first; WHATWG alone says /echo//).
    ["/echo/\\/..", "canonical", "canonical"],
    ["/echo/x/\\/..", "canonical", "canonical"],
    ["/echo/\\/../..", "canonical", "canonical"],
    ["/echo/a/..%5c..%5cadmin", "refused", "refused"],
    ["/echo//a", "refused", "refused"],
    ["/echo/a//b", "refused", "refused"],
    ["/echo/a/b;x=1", "refused", "refused"],
    ["/echo/a/..;/b", "refused", "refused"],
    ["/echo;/a", "refused", "refused"],
    ["/echo/a/%00", "refused", "refused"],
    ["/echo/a%00.json", "refused", "refused"],
    ["/echo/a/%252e%252e/b", "refused", "refused"],
    ["/echo/a/%25252e/b", "refused", "refused"],
    ["/echo%2fa", "refused", "refused"],
    ["/echo/a/../b", "canonical", "canonical"],
    ["/echo/a/./b", "canonical", "canonical"],
    ["/echo/./a", "canonical", "canonical"],
    ["/echo/../echo-write/a", "canonical", "canonical"],
    ["/echo/../admin/v1/users", "canonical", "canonical"],
    ["/status/../echo/a", "canonical", "canonical"],
    ["/echo/a/b.", "canonical", "canonical"],
    ["/echo./a", "canonical", "canonical"],
    ["/echo/a/...", "canonical", "canonical"],
    ["/ECHO/a", "canonical", "canonical"],
    ["/Echo/a", "canonical", "canonical"],
    ["/api/v2/../../base/v1/x", "canonical", "canonical"],
    ["/api/v2/x/../../../y", "canonical", "canonical"],
    ["/api/v2/%2e%2e/%2e%2e/x", "refused", "canonical"],
    ["/echo/@evil.example/a", "canonical", "canonical"],
    // Remainders shaped like another authority (SSRF): refused, or forwarded as a path on the origin's host.
    ["/echo//evil.example/x", "refused", "refused"],
    ["/echo/\\evil.example/x", "refused", "refused"],
    ["/echo/%2f%2fevil.example/x", "refused", "refused"],
    ["/echo/%5cevil.example/x", "refused", "refused"],
    ["/echo/http://evil.example/x", "refused", "refused"],
    ["/echo/..//evil.example/x", "refused", "refused"],
    ["/api/v2/@evil.example/x", "canonical", "canonical"],
    ["/api/v2//evil.example", "refused", "refused"],
    ["/echo/evil.example:443/x", "canonical", "canonical"],
    ["/echo/a/%c0%ae%c0%ae/b", "refused", "refused"],
    ["/echo/a/%e0%80%ae%e0%80%ae/b", "refused", "refused"],
    ["/echo/a/%c0%af", "refused", "refused"],
    // Invalid escapes (IIS %u, nibble double-encoding, a bare %) and 5/6-byte overlong leads.
    ["/echo/a/%u002e%u002e/b", "refused", "refused"],
    ["/api/v2/%u002e%u002e/%u002e%u002e/x", "refused", "refused"],
    ["/echo/a/..%u2215..%u2215b", "refused", "refused"],
    ["/echo/a/%%32%65%%32%65/b", "refused", "refused"],
    ["/echo/a/%2%65%2%65/b", "refused", "refused"],
    ["/echo/a/%/b", "refused", "refused"],
    ["/echo/a/%f8%80%80%80%ae", "refused", "refused"],
    ["/echo/a/%fc%80%80%80%80%af", "refused", "refused"],
  ];

  for (const [name, port] of ports()) {
    it.each(cases)(`${name}: %s`, async (target, direct, entry) => {
      expect(await checkPath(port, target)).toBe(name === "direct" ? direct : entry);
    });
  }

  it.each(ports())("%s: invalid and overlong escapes are the gateway's 400 PATH_INVALID problem, never forwarded", async (_n, port) => {
    for (const target of ["/echo/a/%u002e%u002e/b", "/echo/a/%%32%65/b", "/echo/a/%2%65/b", "/echo/a/%", "/echo/a/%F8%80%80%80%AE", "/api/v2/%fc%80%80%80%80%af"]) {
      const { res, origin } = await send(port, target);
      expect(res.status, target).toBe(400);
      expect(res.headers["content-type"], target).toBe("application/problem+json");
      const problem = JSON.parse(res.body);
      expect(problem.code, target).toBe("PATH_INVALID");
      expect(problem.requestId).toBe(res.headers["x-request-id"]);
      expect(origin, `${target} reached the origin`).toHaveLength(0);
    }
  });

  it.each(ports())("%s: climbing out of a public route into a protected one needs the protected route's key", async (_n, port) => {
    // Authorization is decided on the canonical path: /public/../echo/x is /echo/x, which needs a key.
    for (const target of ["/public/../echo/a", "/public/%2e%2e/echo/a", "/public/..%2fecho/a", "/public/.%2E/echo/a", "/public\\..\\echo\\a"]) {
      const outcome = await checkPath(port, target, false);
      if (outcome === "canonical") {
        const again = await send(port, target, false);
        expect(again.res.status).toBe(401);
        expect(again.origin).toHaveLength(0);
      }
    }
  });

  it.each(ports())("%s: a fragment on the request line never reaches the origin; routing and forwarding agree on what it resolves to", async (_n, port) => {
    // workerd resolves dot segments *through* a '#' on the request line ("/a#/../b" is "/b"),
    // then drops the fragment. The gateway routes and authorizes what workerd hands it, and
    // forwards exactly that, so the fragment can steer the request only onto a path it is then
    // authorized for.
    const m = `frag${seq++}`;
    const auth: Array<[string, string]> = [["Authorization", `Bearer ${key}`]];
    expect((await sendRaw(port, { target: `/echo/${m}#frag`, headers: auth })).status).toBe(200);
    expect((await rawOriginRecords(m)).map((r) => r.url)).toEqual([`/${m}`]);
    // Climbing into the admin API with a proxy key: the admin token check refuses it.
    const admin = await sendRaw(port, { target: `/echo/${m}x#/../../admin/v1/users`, headers: auth });
    expect(admin.status).toBe(401);
    expect(JSON.parse(admin.body).code).toBe("ADMIN_UNAUTHORIZED");
    // From a public route into a protected one, without a key: authorized as the protected path.
    const climb = await sendRaw(port, { target: `/public/x#/../../echo/${m}y` });
    expect(climb.status).toBe(401);
    expect(JSON.parse(climb.body).code).toBe("KEY_INVALID");
    expect(await rawOriginRecords(`${m}x`)).toHaveLength(0);
    expect(await rawOriginRecords(`${m}y`)).toHaveLength(0);
    expect((await rawOriginRecords("#")).length).toBe(0);
  });

  it.each(ports())("%s: authority-shaped remainders (@host, host:port) stay paths on the configured origin's host", async (_n, port) => {
    for (const [target, path] of [
      ["/echo/@evil.example/M", "/@evil.example/M"],
      ["/echo/evil.example:443/M", "/evil.example:443/M"],
      ["/api/v2/@evil.example/M", "/base/v1/@evil.example/M"],
    ]) {
      const m = `ssrf${seq++}`;
      const res = await sendRaw(port, { target: target!.replace("M", m), headers: [["Authorization", `Bearer ${key}`]] });
      expect(res.status, target).toBe(200);
      const recs = await rawOriginRecords(m);
      expect(recs.map((r) => r.url)).toEqual([path!.replace("M", m)]);
      // The recording origin got it, on its own host: the remainder never became an authority.
      expect(recs[0]!.headers.host).toBe(new URL(raw.origin).host);
    }
  });

  it.each(ports())("%s: the prefixed upstream only ever receives paths under /base/v1", async (_n, port) => {
    const m = `pfx${seq++}`;
    for (const t of [`/api/v2/${m}`, `/api/v2/../../${m}`, `/api/v2/%2e%2e/${m}`, `/api/v2/..%2f${m}`, `/api/v2/${m}/../../..`]) await sendRaw(port, { target: t, headers: [["Authorization", `Bearer ${key}`]] });
    const recs = await rawOriginRecords(m);
    expect(recs.length).toBeGreaterThan(0);
    for (const r of recs) expect(r.url.startsWith("/base/v1/")).toBe(true);
  });
});

describe("request lines workerd itself refuses or rewrites", () => {
  it.each([
    ["absolute-form for another host", (m: string) => `GET http://evil.example/echo/${m} HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n`],
    ["an asterisk-form target", (m: string) => `GET * HTTP/1.1\r\nHost: g\r\nX-M: ${m}\r\nConnection: close\r\n\r\n`],
  ])("%s is refused by workerd before the worker runs (a bare 500, not the gateway's), never forwarded", async (_what, build) => {
    // workerd cannot turn these request targets into a URL and answers 500 itself: no request
    // id, no problem body — the gateway never ran. Cloudflare's edge refuses them earlier still.
    const m = `form${seq++}`;
    const res = await sendRaw(raw.direct, { rawRequest: build(m) });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.headers["x-request-id"]).toBeUndefined();
    expect(await rawOriginRecords(m)).toHaveLength(0);
  });

  it("Host and X-Forwarded-Host do not steer the upstream", async () => {
    const m = `host${seq++}`;
    const res = await sendRaw(raw.direct, {
      target: `/echo/${m}`,
      headers: [
        ["Host", "evil.example"],
        ["X-Forwarded-Host", "evil.example"],
        ["Authorization", `Bearer ${key}`],
      ],
    });
    expect(res.status).toBe(200);
    const [rec] = await rawOriginRecords(m);
    expect(rec!.headers.host).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(rec!.headers).not.toHaveProperty("x-forwarded-host");
  });

  it.each([
    ["a space in the target", (m: string) => `GET /echo/${m}/a b HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n`],
    ["a tab in the target", (m: string) => `GET /echo/${m}/a\tb HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n`],
    ["a bare LF line ending with an injected header", (m: string) => `GET /echo/${m} HTTP/1.1\nHost: g\nX-Portcullis-User-Id: usr_admin\nConnection: close\n\n`],
    ["HTTP/1.0 without Host", (m: string) => `GET /echo/${m} HTTP/1.0\r\n\r\n`],
    ["raw non-ASCII bytes", (m: string) => `GET /echo/${m}/\u00e9\u00ff HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n`],
  ])("%s: refused or handled without a 500, never reaching the origin without a key", async (_what, build) => {
    const m = `line${seq++}`;
    const bytes = Uint8Array.from(build(m), (ch) => ch.charCodeAt(0) & 0xff);
    const res = await sendRaw(raw.direct, { rawRequest: bytes });
    expect(res.status === 0 || res.status >= 400, res.raw).toBe(true);
    expect(res.status).not.toBe(500);
    expect(await rawOriginRecords(m)).toHaveLength(0);
  });
});
