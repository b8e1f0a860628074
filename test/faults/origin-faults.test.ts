import { env } from "cloudflare:test";
import { describe, expect, inject, it, vi } from "vitest";
import { authorize } from "../../plugins/authorize";
import { keyAuth } from "../../plugins/key-auth";
import { requestLimits } from "../../plugins/request-limits";
import { createApp } from "../../worker/app";
import { defineGateway } from "../../worker/gateway/config";
import { expectProblem, seedCaller, unique } from "../helpers";

/**
 * Real network faults from test/node/fault-origin.ts (a raw TCP origin that hangs, resets, drips
 * or floods), behind a small gateway with a 1 s upstream timeout, driven with `app.request`.
 */
const faultOrigin = `http://127.0.0.1:${inject("faultPort")}`;
const TIMEOUT_MS = 1_000;
const IDLE_MS = 500;

const app = createApp(
  defineGateway({
    upstreams: {
      faulty: { url: faultOrigin, timeoutMs: TIMEOUT_MS },
      // Same origin with room for a loaded CI machine (timeoutMs bounds the wait for the headers only).
      roomy: { url: faultOrigin, timeoutMs: 60_000 },
      // Refused: a port that was just free (bound, then closed) has no listener.
      refused: { url: "http://127.0.0.1:9" },
      // A body that stops arriving is cut off after 500 ms of silence (the origin's connection closed).
      idle: { url: faultOrigin, timeoutMs: 60_000, idleTimeoutMs: IDLE_MS },
    },
    plugins: [keyAuth(), authorize()],
    routes: [
      { name: "faulty", path: "/f/*", methods: ["GET", "POST"], upstream: "faulty", permission: "echo:read" },
      { name: "roomy", path: "/fb/*", methods: ["GET"], upstream: "roomy", permission: "echo:read" },
      { name: "refused", path: "/r/*", methods: ["GET", "POST"], upstream: "refused", permission: "echo:read" },
      { name: "idle", path: "/i/*", methods: ["GET"], upstream: "idle", permission: "echo:read" },
      // The same bound set per route by request-limits, on an upstream that has none.
      { name: "idle-route", path: "/ir/*", methods: ["GET"], upstream: "roomy", permission: "echo:read", plugins: [requestLimits({ idleTimeoutMs: IDLE_MS })] },
    ],
  }),
);

async function received(marker: string): Promise<Array<{ method: string; target: string; at: number; closedAt?: number }>> {
  return (await (await fetch(`http://127.0.0.1:${inject("faultControlPort")}/?contains=${encodeURIComponent(marker)}`)).json()) as any;
}

let key: string;
const call = async (path: string, init: RequestInit = {}) => {
  key ??= (await seedCaller({ permissions: ["echo:read"] })).key;
  return app.request(`https://gateway.test${path}`, { ...init, headers: { authorization: `Bearer ${key}`, ...(init.headers as Record<string, string>) } }, env);
};
const quietly = async <T>(fn: () => Promise<T>): Promise<T> => {
  const spy = vi.spyOn(console, "error").mockImplementation(() => {});
  try {
    return await fn();
  } finally {
    spy.mockRestore();
  }
};

describe("origin faults give clear, bounded errors", () => {
  it("connection refused → 502 UPSTREAM_UNAVAILABLE", async () => {
    const body = await quietly(async () => expectProblem(await call(`/r/${unique("refused")}`), 502, "UPSTREAM_UNAVAILABLE"));
    expect(body.detail).not.toContain("127.0.0.1");
  });

  it.each(["GET", "POST"])("an origin that never answers → 504 UPSTREAM_TIMEOUT, after exactly one %s to the origin (no retry)", async (method) => {
    const m = unique("hang");
    const res = await call(`/f/hang/${m}`, { method, ...(method === "POST" ? { body: "order=1" } : {}) });
    await expectProblem(res, 504, "UPSTREAM_TIMEOUT");
    // Give a retry, if there were one, time to arrive before counting.
    await new Promise((r) => setTimeout(r, 300));
    const recs = await received(m);
    expect(recs).toHaveLength(1);
    expect(recs[0]!.method).toBe(method);
  });

  it("an origin that resets the connection before answering → 502, one request, no retry", async () => {
    const m = unique("reset");
    await quietly(async () => expectProblem(await call(`/f/reset/${m}`, { method: "POST", body: "x" }), 502, "UPSTREAM_UNAVAILABLE"));
    await new Promise((r) => setTimeout(r, 300));
    expect(await received(m)).toHaveLength(1);
  });

  it("an origin that resets mid-body: the client's body errors or ends short, never padded or replayed", async () => {
    const m = unique("resetbody");
    const res = await call(`/f/reset-body/${m}`);
    // Headers already came through (200, content-length 100000); the body cannot complete.
    expect(res.status).toBe(200);
    let got = -1;
    try {
      got = (await res.arrayBuffer()).byteLength;
    } catch {
      got = -1; // the stream errored: the client sees a broken response, as it should
    }
    expect(got).toBeLessThan(100_000);
    expect(await received(m)).toHaveLength(1);
  });

  it("a slowloris origin (one byte every 200 ms): its headers came in time, so the body is not cut off by timeoutMs; the client decides how long to wait", async () => {
    const m = unique("drip");
    const res = await call(`/f/drip/${m}`);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const started = Date.now();
    let got = 0;
    // Read past the 1 s timeout: bytes keep arriving (timeoutMs bounds the wait for the answer only).
    while (Date.now() - started < TIMEOUT_MS + 500) {
      const r = await reader.read();
      expect(r.done).toBe(false);
      got += r.value!.byteLength;
    }
    expect(got).toBeGreaterThan(TIMEOUT_MS / 200);
    expect(got).toBeLessThan(1_000);
    await reader.cancel();
  });

  it("idleTimeoutMs: an origin that stops sending mid-body is cut off after that much silence; its connection is closed; the event is logged", async () => {
    const m = unique("stall");
    const logged: string[] = [];
    const spy = vi.spyOn(console, "error").mockImplementation((...a: unknown[]) => void logged.push(a.map(String).join(" ")));
    try {
      const res = await call(`/i/stall-body/${m}`);
      expect(res.status).toBe(200);
      const reader = res.body!.getReader();
      const started = Date.now();
      let got = 0;
      let failed: unknown;
      try {
        for (let r = await reader.read(); !r.done; r = await reader.read()) got += r.value.byteLength;
      } catch (err) {
        failed = err;
      }
      const took = Date.now() - started;
      // The 1,000 bytes sent came through; then the body errors (never ends as if complete).
      expect(got).toBe(1000);
      expect(failed).toBeDefined();
      expect(took).toBeGreaterThanOrEqual(IDLE_MS - 50);
      expect(took).toBeLessThan(IDLE_MS + 2_500);
      // The gateway closed the origin's connection rather than leave it hanging.
      await vi.waitFor(async () => expect((await received(m))[0]?.closedAt).toBeDefined(), { timeout: 3_000 });
      const line = logged.find((l) => l.includes("upstream body idle"));
      expect(line).toBeDefined();
      expect(JSON.parse(line!)).toMatchObject({ level: "warn", upstream: "idle", idleTimeoutMs: IDLE_MS });
    } finally {
      spy.mockRestore();
    }
  });

  it("request-limits' idleTimeoutMs sets the bound on a route whose upstream has none", async () => {
    const m = unique("stallroute");
    const res = await call(`/ir/stall-body/${m}`);
    expect(res.status).toBe(200);
    const started = Date.now();
    await expect(res.arrayBuffer()).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(IDLE_MS + 2_500);
    await vi.waitFor(async () => expect((await received(m))[0]?.closedAt).toBeDefined(), { timeout: 3_000 });
  });

  it("idleTimeoutMs: a body that keeps arriving (a byte every 200 ms) streams past it, and past timeoutMs", async () => {
    const m = unique("dripidle");
    const res = await call(`/i/drip/${m}`);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const started = Date.now();
    let got = 0;
    while (Date.now() - started < IDLE_MS * 4) {
      const r = await reader.read();
      expect(r.done).toBe(false);
      got += r.value!.byteLength;
    }
    expect(got).toBeGreaterThan(IDLE_MS / 200);
    await reader.cancel();
    // Cancelling the client's body closes the origin's connection too.
    await vi.waitFor(async () => expect((await received(m))[0]?.closedAt).toBeDefined(), { timeout: 3_000 });
  });

  it("a huge origin response streams through unbuffered and intact (32 MiB)", async () => {
    const size = 32 * 1024 * 1024;
    const res = await call(`/fb/big/${size}/${unique("big")}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(size));
    let total = 0;
    const reader = res.body!.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) total += r.value.byteLength;
    expect(total).toBe(size);
  });
});
