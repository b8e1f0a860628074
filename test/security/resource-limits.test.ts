import { beforeAll, describe, expect, it } from "vitest";
import { gw, originRecords, seedCaller, unique } from "../helpers";
import { raw, rawOriginRecords, seedRawCaller, sendRaw } from "./raw";

/**
 * Resource limits the core has today. The core sets no body-size limit of its own (a
 * request-limits plugin is planned separately): these tests pin what the runtime does, so a
 * change is noticed, and that nothing unbounded is buffered.
 */
let rawKey: string;
beforeAll(async () => {
  rawKey = await seedRawCaller(["echo:read", "echo:write"]);
});
const marker = (p: string) => `${p}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

describe("header and request-line size (enforced by workerd before the worker runs)", () => {
  it.each([
    ["one 64 KiB header", (m: string) => `GET /echo/${m} HTTP/1.1\r\nHost: g\r\nX-Big: ${"a".repeat(64 * 1024)}\r\n\r\n`],
    ["one 1 MiB header", (m: string) => `GET /echo/${m} HTTP/1.1\r\nHost: g\r\nX-Big: ${"a".repeat(1024 * 1024)}\r\n\r\n`],
    ["5 000 small headers", (m: string) => `GET /echo/${m} HTTP/1.1\r\nHost: g\r\n${Array.from({ length: 5000 }, (_, i) => `X-H${i}: v\r\n`).join("")}\r\n`],
    ["500 headers of 100 bytes", (m: string) => `GET /echo/${m} HTTP/1.1\r\nHost: g\r\n${Array.from({ length: 500 }, (_, i) => `X-H${i}: ${"b".repeat(100)}\r\n`).join("")}\r\n`],
    ["a 100 KiB request target", (m: string) => `GET /echo/${m}/${"a".repeat(100 * 1024)} HTTP/1.1\r\nHost: g\r\n\r\n`],
  ])("%s: 431 from workerd, never forwarded", async (_what, build) => {
    const m = marker("hdr");
    const res = await sendRaw(raw.direct, { rawRequest: build(m).replace("Host: g\r\n", `Host: g\r\nAuthorization: Bearer ${rawKey}\r\n`) });
    expect(res.status).toBe(431);
    expect(await rawOriginRecords(m)).toHaveLength(0);
  });

  it("a large but accepted header set (8 KiB) is forwarded intact", async () => {
    const m = marker("hdr-ok");
    const res = await sendRaw(raw.direct, { target: `/echo/${m}`, headers: [["Authorization", `Bearer ${rawKey}`], ["X-Big", "c".repeat(8 * 1024)]] });
    expect(res.status).toBe(200);
    const [rec] = await rawOriginRecords(m);
    expect(rec!.headers["x-big"]).toHaveLength(8 * 1024);
  });
});

describe("bodies (no core limit yet: streamed, never buffered whole)", () => {
  let key: string;
  beforeAll(async () => {
    key = (await seedCaller({ permissions: ["echo:write"] })).key;
  });

  it("a 2 MiB declared-length body is streamed to the origin intact", async () => {
    const m = unique("body");
    const body = new Uint8Array(2 * 1024 * 1024).fill(0x41);
    const res = await gw(`/echo-write/${m}`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/octet-stream" }, body });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const [rec] = await originRecords(m);
    expect(atob(rec!.bodyBase64).length).toBe(body.length);
  });

  it("a 2 MiB chunked body (no declared length) is streamed to the origin intact", async () => {
    const m = unique("chunked");
    const chunk = new Uint8Array(64 * 1024).fill(0x42);
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 32) return controller.close();
        sent++;
        controller.enqueue(chunk);
      },
    });
    const res = await gw(`/echo-write/${m}`, { method: "PUT", headers: { authorization: `Bearer ${key}` }, body: stream, duplex: "half" } as RequestInit);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const [rec] = await originRecords(m);
    expect(atob(rec!.bodyBase64).length).toBe(32 * chunk.length);
  });

  it("a refused request's body is never read or forwarded (401 before the body)", async () => {
    const m = unique("body401");
    const res = await gw(`/echo-write/${m}`, { method: "POST", body: new Uint8Array(1024 * 1024) });
    expect(res.status).toBe(401);
    expect(await originRecords(m)).toHaveLength(0);
  });

  it("Content-Length + Transfer-Encoding (request smuggling) cannot slip a second request to the origin", async () => {
    const m = marker("smug");
    const rawRequest =
      `POST /echo-write/${m}-a HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer ${rawKey}\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n` +
      `0\r\n\r\nGET /echo/${m}-smuggled HTTP/1.1\r\nHost: g\r\nX: y\r\n\r\n`;
    const res = await sendRaw(raw.direct, { rawRequest });
    expect(res.status).not.toBe(500);
    // The smuggled GET carries no key: whatever workerd made of the framing, it must not reach the origin.
    expect(await rawOriginRecords(`${m}-smuggled`)).toHaveLength(0);
    for (const rec of await rawOriginRecords(`${m}-a`)) expect(rec.method).toBe("POST");
  });
});
