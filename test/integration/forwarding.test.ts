import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { expectProblem, fromBase64, gw, json, originRecords, seedCaller, textOf, unique } from "../helpers";

let caller: Awaited<ReturnType<typeof seedCaller>>;
beforeAll(async () => {
  caller = await seedCaller({ permissions: ["echo:*"], group: "partner" });
});
const auth = () => ({ authorization: `Bearer ${caller.key}` });

describe("forwarding fidelity", () => {
  it("forwards method, path remainder, query and the exact body bytes", async () => {
    const m = unique("fid");
    const bytes = new Uint8Array(4096).map((_, i) => (i * 7 + 3) % 256); // binary, including NULs
    const res = await gw(`/echo-write/${m}/a/b.json?x=1&y=%20two&x=3`, {
      method: "PATCH",
      headers: { ...auth(), "content-type": "application/octet-stream" },
      body: bytes,
    });
    expect(res.status).toBe(200);
    const [rec] = await originRecords(m);
    expect(rec).toBeDefined();
    expect(rec!.method).toBe("PATCH");
    expect(rec!.url).toBe(`/${m}/a/b.json?x=1&y=%20two&x=3`);
    expect(fromBase64(rec!.bodyBase64)).toEqual(bytes);
    expect(rec!.headers["content-type"]).toBe("application/octet-stream");
  });

  it("streams a request body of unknown length", async () => {
    const m = unique("stream");
    const chunks = ["alpha-", "beta-", "gamma"];
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const c of chunks) controller.enqueue(new TextEncoder().encode(c));
        controller.close();
      },
    });
    const res = await gw(`/echo-write/${m}`, { method: "POST", headers: auth(), body });
    expect(res.status).toBe(200);
    const [rec] = await originRecords(m);
    expect(textOf(rec!.bodyBase64)).toBe(chunks.join(""));
  });

  it("sends identity headers and the origin credential, and strips the client's credential and spoofable headers", async () => {
    const m = unique("hdr");
    const res = await gw(`/echo/${m}`, {
      headers: {
        ...auth(),
        "x-api-key": caller.key,
        "cf-connecting-ip": "198.51.100.7",
        "x-forwarded-for": "10.0.0.1",
        "x-forwarded-host": "evil.example",
        "x-forwarded-proto": "gopher",
        forwarded: "for=10.0.0.1;host=evil.example",
        "x-real-ip": "10.0.0.1",
        "true-client-ip": "10.0.0.1",
        "x-portcullis-user-id": "usr_spoofed",
        "x-portcullis-user-group": "internal",
        "x-request-id": "client-chosen-id",
        "x-http-method-override": "DELETE",
        "proxy-authorization": "Basic Zm9vOmJhcg==",
        te: "trailers",
        "x-custom": "kept",
        accept: "application/json",
      },
    });
    expect(res.status).toBe(200);
    const [rec] = await originRecords(m);
    const h = rec!.headers;
    expect(h["authorization"]).toBe(`Bearer ${env.ECHO_ORIGIN_TOKEN}`);
    expect(h["x-portcullis-user-id"]).toBe(caller.user.id);
    expect(h["x-portcullis-user-name"]).toBe(caller.user.name);
    expect(h["x-portcullis-user-group"]).toBe("partner");
    expect(h["x-portcullis-key-id"]).toBe(caller.keyId);
    expect(h["x-portcullis-route"]).toBe("echo-read");
    expect(h["x-forwarded-for"]).toBe("198.51.100.7");
    expect(h["x-forwarded-proto"]).toBe("https");
    expect(h["x-request-id"]).toBe(res.headers.get("x-request-id"));
    expect(h["x-request-id"]).toMatch(/^req_/);
    expect(h["x-custom"]).toBe("kept");
    expect(h["accept"]).toBe("application/json");
    for (const gone of ["x-api-key", "x-forwarded-host", "forwarded", "x-real-ip", "true-client-ip", "x-http-method-override", "proxy-authorization", "te", "cf-connecting-ip"]) {
      expect(h, gone).not.toHaveProperty(gone);
    }
    expect(h.host).toBe(new URL(env.TEST_ORIGIN_URL).host);
    expect(JSON.stringify(rec)).not.toContain(caller.key);
  });

  it("headers named in Connection are dropped, but cannot remove what the gateway injects", async () => {
    const m = unique("conn");
    const res = await gw(`/echo/${m}`, {
      headers: { ...auth(), connection: "x-drop-me, authorization, x-portcullis-user-id, x-request-id", "x-drop-me": "1", "x-keep-me": "2" },
    });
    expect(res.status).toBe(200);
    const [rec] = await originRecords(m);
    expect(rec!.headers).not.toHaveProperty("x-drop-me");
    expect(rec!.headers["x-keep-me"]).toBe("2");
    expect(rec!.headers["authorization"]).toBe(`Bearer ${env.ECHO_ORIGIN_TOKEN}`);
    expect(rec!.headers["x-portcullis-user-id"]).toBe(caller.user.id);
    expect(rec!.headers["x-request-id"]).toMatch(/^req_/);
  });

  it("passes the origin's status and body back, without hop-by-hop response headers", async () => {
    const m = unique("resp");
    const res = await gw(`/echo/${m}/__status/418`, { headers: auth() });
    expect(res.status).toBe(418);
    expect(res.headers.get("x-origin")).toBe("recording");
    expect(res.headers.get("x-origin-hop")).toBeNull();
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
    expect((await json(res)).url).toBe(`/${m}/__status/418`);
  });

  it("appends the remainder under the upstream's own path prefix and injects a custom credential header", async () => {
    const m = unique("pfx");
    const res = await gw(`/api/v2/${m}/items?q=1`, { headers: auth() });
    expect(res.status).toBe(200);
    const [rec] = await originRecords(m);
    expect(rec!.url).toBe(`/base/v1/${m}/items?q=1`);
    expect(rec!.headers["x-origin-key"]).toBe(env.ECHO_ORIGIN_TOKEN);
    expect(rec!.headers).not.toHaveProperty("authorization");
  });

  it("identityHeaders: false — the origin learns nothing of the caller, and a client still cannot send the headers", async () => {
    const m = unique("noid");
    const res = await gw(`/api/v2/${m}`, {
      headers: { ...auth(), "x-portcullis-user-id": "usr_spoofed", "x-portcullis-key-id": "key_spoofed", "x-portcullis-user-name": "spoofed" },
    });
    expect(res.status).toBe(200);
    const [rec] = await originRecords(m);
    const h = rec!.headers;
    for (const gone of ["x-portcullis-user-id", "x-portcullis-user-name", "x-portcullis-user-group", "x-portcullis-key-id"]) {
      expect(h, gone).not.toHaveProperty(gone);
    }
    expect(JSON.stringify(rec)).not.toContain(caller.user.id);
    expect(JSON.stringify(rec)).not.toContain(caller.keyId);
    // What is not about the caller still goes: the route, the request id, the credential.
    expect(h["x-portcullis-route"]).toBe("prefixed");
    expect(h["x-request-id"]).toBe(res.headers.get("x-request-id"));
    expect(h["x-origin-key"]).toBe(env.ECHO_ORIGIN_TOKEN);
  });

  it("matches the route prefix itself and exact routes, but not look-alike prefixes", async () => {
    const res = await gw(`/api/v2`, { headers: auth() });
    expect(res.status).toBe(200);
    expect((await json(res)).url).toBe("/base/v1");
    expect((await gw("/status", { headers: auth() })).status).toBe(200);
    await expectProblem(await gw("/status/more", { headers: auth() }), 404, "NOT_FOUND");
    await expectProblem(await gw("/echoes/x", { headers: auth() }), 404, "NOT_FOUND");
  });

  it("does not follow origin redirects: the 302 goes back to the client", async () => {
    const m = unique("redir");
    const res = await gw(`/echo/${m}/__redirect`, { headers: auth() });
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("http://evil.example/steal");
    expect(await originRecords(m)).toHaveLength(1);
  });

  it("runs a route with its plugins disabled without requiring a key", async () => {
    const m = unique("pub");
    const res = await gw(`/public/${m}`, { headers: { authorization: "Bearer client-token-for-origin" } });
    expect(res.status).toBe(200);
    const [rec] = await originRecords(m);
    // The upstream credential replaces whatever the client sent in the same header.
    expect(rec!.headers["authorization"]).toBe(`Bearer ${env.ECHO_ORIGIN_TOKEN}`);
    expect(rec!.headers).not.toHaveProperty("x-portcullis-user-id");
  });
});

describe("refusals never reach the origin", () => {
  it("unmatched paths get 404 problem+json", async () => {
    const m = unique("nomatch");
    await expectProblem(await gw(`/nowhere/${m}`, { headers: auth() }), 404, "NOT_FOUND");
    await expectProblem(await gw(`/`, { headers: auth() }), 404, "NOT_FOUND");
    expect(await originRecords(m)).toHaveLength(0);
  });

  it("methods a route does not list get 405 with Allow", async () => {
    const m = unique("method");
    for (const method of ["POST", "DELETE", "TRACE", "OPTIONS"]) {
      const res = await gw(`/echo/${m}`, { method, headers: auth(), ...(method === "POST" ? { body: "x" } : {}) });
      const problem = await expectProblem(res, 405, "METHOD_NOT_ALLOWED");
      expect(problem.detail).toContain(method);
      expect(res.headers.get("allow")).toBe("GET, HEAD");
    }
    expect(await originRecords(m)).toHaveLength(0);
  });

  it("an unreachable origin is a 502 and a slow one a 504", async () => {
    await expectProblem(await gw(`/dead/x`, { headers: auth() }), 502, "UPSTREAM_UNAVAILABLE");
    const m = unique("slow");
    await expectProblem(await gw(`/echo/${m}/__slow/3000`, { headers: auth() }), 504, "UPSTREAM_TIMEOUT");
  });
});
