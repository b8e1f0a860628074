import { beforeEach, describe, expect, it } from "vitest";
import { audit } from "../../plugins/audit";
import { keyAuth } from "../../plugins/key-auth";
import { requestLimits } from "../../plugins/request-limits";
import { authorize } from "../../plugins/authorize";
import { eventsFor, waitForEvents } from "../audit-helpers";
import { gw, gwStream, json, seedCaller, testGateway, unique } from "../helpers";
import { RAW_ADMIN, raw, sendRaw, seedRawCaller } from "../security/raw";
import { clearOfHourEdge } from "../window-edges";

const auth = (key: string) => ({ authorization: `Bearer ${key}` });

/** A request body streamed without Content-Length (the gateway sees it chunked), in 1000-byte pieces. */
function chunked(total: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= total) return controller.close();
      const n = Math.min(1000, total - sent);
      sent += n;
      controller.enqueue(new Uint8Array(n).fill(120));
    },
  });
}

/** Sends through the test worker and returns the request id and the body bytes the client got. */
async function call(path: string, init: RequestInit = {}) {
  const res = await gw(path, init);
  const body = new Uint8Array(await res.arrayBuffer());
  return { res, id: res.headers.get("x-request-id")!, received: body.byteLength };
}

describe("bytes in and out are recorded whether or not a length was declared", () => {
  // One case counts against rl-ip's 1 h window: never across an hour edge (test/window-edges.ts).
  beforeEach(() => clearOfHourEdge(20_000), 30_000);

  it("a chunked origin response: the bytes actually sent; one with Content-Length: its length", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("bytes");
    const streamed = await call(`/echo/${m}/__bytes/5000?chunked=1`, { headers: auth(key) });
    expect(streamed.res.status).toBe(200);
    expect(streamed.res.headers.get("content-length")).toBeNull();
    expect(streamed.received).toBe(5000);
    const declared = await call(`/echo/${m}/__bytes/1234`, { headers: auth(key) });
    expect(declared.res.headers.get("content-length")).toBe("1234");
    // The echo answer is chunked too (Node's writeHead without a length).
    const echoed = await call(`/echo/${m}/echo`, { headers: auth(key) });
    expect(echoed.res.headers.get("content-length")).toBeNull();

    const rows = new Map((await eventsFor(m, 3)).map((r) => [r.id, r]));
    expect(rows.get(streamed.id)).toMatchObject({ decision: "allowed", status: 200, bytes_in: 0, bytes_out: 5000, reason: null });
    expect(rows.get(declared.id)).toMatchObject({ decision: "allowed", bytes_out: 1234 });
    expect(rows.get(echoed.id)).toMatchObject({ decision: "allowed", bytes_out: echoed.received });
    expect(echoed.received).toBeGreaterThan(100);
  });

  it("the gateway's own problem responses declare their length, and the event records it", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("problem");
    // A client address of its own, so no other test spends this window's allowance.
    const ip = { ...auth(key), "cf-connecting-ip": `2001:db8:a0d1::${Math.floor(Math.random() * 0xffff).toString(16)}` };
    const calls = [
      [`/echo/${m}/nokey`, {}, 401],
      [`/echo-write/${m}/forbidden`, { method: "POST", headers: auth(key), body: "abc" }, 403],
      [`/nowhere/${m}`, { headers: auth(key) }, 404],
      [`/echo/${m}/method`, { method: "DELETE", headers: auth(key) }, 405],
      [`/echo/${m};bad`, { headers: auth(key) }, 400],
      [`/dead/${m}`, { headers: auth(key) }, 502],
      // rl-ip allows two requests an hour per client IP; the third is refused.
      [`/rl-ip/${m}/1`, { headers: ip }, 200],
      [`/rl-ip/${m}/2`, { headers: ip }, 200],
      [`/rl-ip/${m}/3`, { headers: ip }, 429],
    ] as const;
    const sent = [];
    for (const [path, init, status] of calls) {
      const c = await call(path, init as RequestInit);
      expect(c.res.status, path).toBe(status);
      if (status !== 200) {
        expect(c.res.headers.get("content-type")).toBe("application/problem+json");
        expect(c.res.headers.get("content-length"), path).toBe(String(c.received));
      }
      sent.push(c);
    }
    const rows = new Map((await eventsFor(m, calls.length)).map((r) => [r.id, r]));
    for (const [i, c] of sent.entries()) {
      expect(rows.get(c.id), calls[i]![0]).toMatchObject({ status: calls[i]![2], bytes_out: c.received });
      expect(c.received).toBeGreaterThan(0);
    }
    expect(rows.get(sent[1]!.id)).toMatchObject({ code: "FORBIDDEN", bytes_in: 3 });
    expect(rows.get(sent[8]!.id)).toMatchObject({ decided_by: "rate-limit", code: "RATE_LIMITED" });
    // The limit state the rate-limit plugin reported, per request.
    expect(JSON.parse(rows.get(sent[6]!.id)!.limit_state)).toEqual([expect.objectContaining({ name: "rl-ip", kind: "rate", outcome: "allowed", limit: 2, remaining: 1 })]);
    expect(JSON.parse(rows.get(sent[8]!.id)!.limit_state)).toEqual([expect.objectContaining({ name: "rl-ip", outcome: "refused", remaining: 0 })]);
  });

  it("HEAD sends no body, whatever the length says", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("head");
    const ok = await call(`/echo/${m}/__bytes/300`, { method: "HEAD", headers: auth(key) });
    const missing = await call(`/nowhere/${m}`, { method: "HEAD" });
    expect([ok.res.status, missing.res.status]).toEqual([200, 404]);
    const rows = new Map((await eventsFor(m, 2)).map((r) => [r.id, r]));
    expect(rows.get(ok.id)).toMatchObject({ method: "HEAD", bytes_out: 0 });
    expect(rows.get(missing.id)).toMatchObject({ method: "HEAD", status: 404, bytes_out: 0 });
  });

  it("a chunked request body: the bytes read; unknown (null) when it was refused unread", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read", "echo:write"] });
    const m = unique("bodyin");
    const streamed = await call(`/echo-write/${m}/streamed`, { method: "POST", headers: auth(key), body: chunked(7000), duplex: "half" } as RequestInit);
    expect(streamed.res.status).toBe(200);
    const unread = await call(`/echo-write/${m}/unread`, { method: "POST", body: chunked(7000), duplex: "half" } as RequestInit);
    expect(unread.res.status).toBe(401);
    const declared = await call(`/echo-write/${m}/declared`, { method: "PUT", headers: auth(key), body: "x".repeat(321) });
    const rows = new Map((await eventsFor(m, 3)).map((r) => [r.id, r]));
    expect(rows.get(streamed.id)).toMatchObject({ decision: "allowed", bytes_in: 7000 });
    expect(rows.get(unread.id)).toMatchObject({ decision: "refused", code: "KEY_INVALID", bytes_in: null });
    expect(rows.get(declared.id)).toMatchObject({ bytes_in: 321 });
  });

  it("a client that aborts a streamed download: the event still lands, with the bytes sent so far and the decision", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("abort");
    // 100 KiB over ~10 s; the client takes the first 2 KiB and goes away.
    const res = await gwStream(`/echo/${m}/__trickle/100`, { headers: auth(key) });
    expect(res.status).toBe(200);
    const id = res.headers.get("x-request-id")!;
    const reader = res.body!.getReader();
    let got = 0;
    while (got < 2048) {
      const r = await reader.read();
      if (r.done) break;
      got += r.value.byteLength;
    }
    await reader.cancel();
    const [row] = await waitForEvents("id = ?", [id], 1);
    expect(row).toMatchObject({ decision: "allowed", status: 200, origin_status: 200, reason: "client_aborted", code: null });
    expect(row!.bytes_out).toBeGreaterThanOrEqual(got);
    expect(row!.bytes_out).toBeLessThan(100 * 1024);
  });

  it("a client that drops the connection mid-download (real socket): the event lands, with the bytes sent so far", async () => {
    // workerd does not always tell the Worker (measured: a stream waiting on an origin's body is
    // neither cancelled nor settled), so the idle bound (streamIdleMs, 1 s in the fixture) records it.
    const key = await seedRawCaller();
    const m = unique("sockabort");
    const res = await sendRaw(raw.direct, { target: `/echo/${m}/__trickle/100`, headers: [["Authorization", `Bearer ${key}`]], closeAfter: 3000 });
    expect(res.status).toBe(200);
    const id = res.headers["x-request-id"]!;
    let event: any;
    for (let i = 0; i < 100 && !event; i++) {
      const page = await json(await fetch(`${raw.admin}/audit/requests?route=echo-read&limit=50`, { headers: RAW_ADMIN }));
      event = page.data.find((e: any) => e.id === id);
      if (!event) await new Promise((r) => setTimeout(r, 100));
    }
    expect(event).toMatchObject({ decision: "allowed", status: 200, originStatus: 200, code: null });
    expect(["client_aborted", "stream_idle"]).toContain(event.reason);
    expect(event.bytesOut).toBeGreaterThan(0);
    expect(event.bytesOut).toBeLessThan(100 * 1024);
  });

  it("a streamed response cut off by maxResponseBytes is recorded as an error with the bytes sent", async () => {
    const fetchGw = testGateway({
      plugins: [audit({ sink: "d1", flushIntervalMs: 20 }), keyAuth(), authorize()],
      routes: [{ name: "capped", path: "/capped/*", upstream: "echo", permission: "echo:read", plugins: [requestLimits({ maxResponseBytes: 3000 })] }],
    });
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("capped");
    const res = await fetchGw(`/capped/${m}/__bytes/8000?chunked=1`, { headers: auth(key) });
    expect(res.status).toBe(200);
    await expect(res.arrayBuffer()).rejects.toThrow();
    const [row] = await eventsFor(m, 1);
    expect(row).toMatchObject({ status: 200, origin_status: 200, decision: "error", decided_by: "upstream", code: "UPSTREAM_RESPONSE_TOO_LARGE", reason: "stream_failed" });
    expect(row!.bytes_out).toBeLessThanOrEqual(3000);
  });
});
