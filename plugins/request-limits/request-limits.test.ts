import { describe, expect, it } from "vitest";
import { expectProblem, json, originRecords, seedCaller, testGateway, unique } from "../../test/helpers";
import { authorize } from "../authorize";
import { keyAuth } from "../key-auth";
import { requestLimits } from "./index";

const fetchGw = testGateway({
  plugins: [keyAuth(), authorize()],
  routes: [
    {
      name: "rl",
      path: "/rl/*",
      methods: ["GET", "POST", "PUT", "DELETE"],
      upstream: "echo",
      permission: "echo:read",
      plugins: [requestLimits({ maxBodyBytes: 64, methods: ["GET", "POST", "PUT"], contentTypes: ["application/json", "text/*"], timeoutMs: 300, maxResponseBytes: 500 })],
    },
  ],
});

let caller: { key: string } | undefined;
async function key() {
  caller ??= await seedCaller({ permissions: ["echo:read"] });
  return caller.key;
}

/** A body the client streams without Content-Length (chunked), in pieces. */
function streamed(total: number, piece = 16) {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= total) return controller.close();
      const n = Math.min(piece, total - sent);
      sent += n;
      controller.enqueue(new Uint8Array(n).fill(98));
    },
  });
}

async function send(path: string, init: RequestInit & { duplex?: "half" } = {}) {
  const marker = unique("rl");
  const res = await fetchGw(`/rl/${marker}${path}`, { ...init, headers: { "x-api-key": await key(), ...(init.headers as Record<string, string>) } });
  return { res, records: await originRecords(marker) };
}

describe("request-limits", () => {
  it("passes a body within the limit, streamed or not, byte for byte", async () => {
    const small = await send("", { method: "POST", headers: { "content-type": "application/json" }, body: '{"ok":true}' });
    expect(small.res.status).toBe(200);
    expect(atob(small.records[0]!.bodyBase64)).toBe('{"ok":true}');
    const chunked = await send("", { method: "POST", headers: { "content-type": "text/plain" }, body: streamed(64), duplex: "half" });
    expect(chunked.res.status).toBe(200);
    expect(atob(chunked.records[0]!.bodyBase64)).toBe("b".repeat(64));
  });

  it("413 by Content-Length and by counting streamed bytes; nothing reaches the origin", async () => {
    const declared = await send("", { method: "POST", headers: { "content-type": "application/json" }, body: "x".repeat(65) });
    await expectProblem(declared.res, 413, "PAYLOAD_TOO_LARGE");
    expect(declared.records).toEqual([]);
    const chunked = await send("", { method: "PUT", headers: { "content-type": "text/plain" }, body: streamed(10_000), duplex: "half" });
    await expectProblem(chunked.res, 413, "PAYLOAD_TOO_LARGE");
    expect(chunked.records).toEqual([]);
  });

  it("405 with Allow for a method the route has but the plugin narrows away", async () => {
    const { res, records } = await send("", { method: "DELETE" });
    await expectProblem(res, 405, "METHOD_NOT_ALLOWED");
    expect(res.headers.get("allow")).toBe("GET, POST, PUT, HEAD");
    expect(records).toEqual([]);
  });

  it("415 for an unlisted or missing content type on a request with a body", async () => {
    for (const headers of [{ "content-type": "application/xml" }, {}] as Record<string, string>[]) {
      // A byte body gets no implicit Content-Type (a string body would be text/plain).
      const { res, records } = await send("", { method: "POST", headers, body: new TextEncoder().encode("<a/>") });
      await expectProblem(res, 415, "UNSUPPORTED_MEDIA_TYPE");
      expect(res.headers.get("accept-post")).toBe("application/json, text/*");
      expect(records).toEqual([]);
    }
    expect((await send("", { method: "POST", headers: { "content-type": "text/csv; charset=utf-8" }, body: "a,b" })).res.status).toBe(200);
  });

  it("415 when the client's Connection header would strip the Content-Type that was checked", async () => {
    // The sanitizer drops headers named in Connection: the check must see what is forwarded,
    // or the body reaches the origin with no media type at all.
    for (const connection of ["content-type", "keep-alive, Content-Type"]) {
      const { res, records } = await send("", { method: "POST", headers: { "content-type": "application/json", connection }, body: "a=1&b=<xml/>" });
      const problem = await expectProblem(res, 415, "UNSUPPORTED_MEDIA_TYPE");
      expect(problem.detail).toContain("(none)");
      expect(records).toEqual([]);
    }
  });

  it("504 when the origin is slower than the route's timeout", async () => {
    const { res } = await send("/__slow/1500");
    await expectProblem(res, 504, "UPSTREAM_TIMEOUT");
  });

  it("502 for a response over maxResponseBytes by Content-Length; a chunked one is cut off", async () => {
    expect((await send("/__bytes/400")).res.status).toBe(200);
    const declared = await send("/__bytes/501");
    const body = await expectProblem(declared.res, 502, "UPSTREAM_RESPONSE_TOO_LARGE");
    expect(body.detail).toContain("500 bytes");
    const chunked = await send("/__bytes/2000?chunked=1");
    expect(chunked.res.status).toBe(200);
    await expect(chunked.res.arrayBuffer()).rejects.toThrow();
  });

  it("strips method-override headers: the origin sees the method that was authorized", async () => {
    const { res, records } = await send("", { headers: { "x-http-method-override": "DELETE", "x-http-method": "DELETE", "x-method-override": "DELETE" } });
    expect(res.status).toBe(200);
    expect((await json(res)).method).toBe("GET");
    for (const h of ["x-http-method-override", "x-http-method", "x-method-override"]) expect(records[0]!.headers[h]).toBeUndefined();
  });

  it("refuses bad options at load", () => {
    expect(requestLimits({ contentTypes: ["json"] }).configIssues?.[0]?.path).toEqual(["contentTypes", 0]);
    expect(requestLimits({ maxBodyBytes: -1 }).configIssues?.[0]?.path).toEqual(["maxBodyBytes"]);
    // @ts-expect-error TRACE is not a method the gateway routes
    expect(requestLimits({ methods: ["TRACE"] }).configIssues).toHaveLength(1);
  });
});
