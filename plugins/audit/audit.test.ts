import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { z } from "@hono/zod-openapi";
import { createApp } from "../../worker/app";
import { redactTarget } from "../../worker/audit/event";
import { GatewayError } from "../../worker/errors";
import { defineGateway } from "../../worker/gateway/config";
import { definePlugin } from "../../worker/gateway/plugin";
import { fakeEvent, waitForEvents } from "../../test/audit-helpers";
import type { RequestEvent } from "../../worker/audit/event";
import { deliver, eventsOfMessage } from "../../worker/audit/sink";
import { unique } from "../../test/helpers";
import { audit, AUDIT_BAG, auditOptions, DEFAULT_REDACTED_QUERY_PARAMS } from ".";

const defaults = auditOptions.parse({});

describe("query redaction", () => {
  it("redacts listed parameters (case-insensitive, prefix patterns) and keeps the rest", () => {
    expect(redactTarget("/a", "?Token=x&q=1&sig=2", defaults)).toBe("/a?Token=REDACTED&q=1&sig=REDACTED");
    expect(redactTarget("/a", "?x-sig-v=1&y=2", { ...defaults, redactQueryParams: ["x-sig-*"] })).toBe("/a?x-sig-v=REDACTED&y=2");
    expect(redactTarget("/a", "", defaults)).toBe("/a");
    expect(DEFAULT_REDACTED_QUERY_PARAMS).toContain("api_key");
  });

  it("in allowlist mode redacts everything not kept", () => {
    expect(redactTarget("/a", "?page=2&email=a%40b.c&flag", { ...defaults, keepQueryParams: ["page"] })).toBe("/a?page=2&email=REDACTED&flag");
  });

  it("redacts anything shaped like a Portcullis key, wherever it is", () => {
    expect(redactTarget("/a/pcl_abc/b", "?note=pcl_xyz&pcl_bare", defaults)).toBe("/a/REDACTED/b?note=REDACTED&REDACTED");
    expect(redactTarget("/a/..%2fpcl_abc/x%2Fpcl%5Fdef", "?n=%70cl_q&pcl_k=1", defaults)).toBe("/a/REDACTED/REDACTED?n=REDACTED&REDACTED");
  });

  it("fails at config load on bad options, naming the plugin and field", () => {
    const load = (plugin: ReturnType<typeof audit>) =>
      defineGateway({ upstreams: { echo: { url: "http://127.0.0.1:9" } }, plugins: [plugin], routes: [{ name: "r", path: "/r/*", upstream: "echo" }] });
    expect(() => load(audit({ maxBatch: 500 }))).toThrow(/maxBatch \(plugin "audit"\)/);
    expect(() => load(audit({ sink: "kafka" as never }))).toThrow(/sink \(plugin "audit"\)/);
    // The idle wait and the flush after it must fit in the runtime's ~30 s of waitUntil grace.
    expect(() => load(audit({ streamIdleMs: 20_000, flushIntervalMs: 10_000 }))).toThrow(/streamIdleMs \(plugin "audit"\).*at most 25000/);
  });
});

describe("decisions of any plugin", () => {
  // A custom plugin that refuses with its own code, and one that answers by itself.
  const denyTeapots = definePlugin({
    name: "deny-teapots",
    config: z.strictObject({}),
    create: () =>
      async function denyTeapots(c, next) {
        if (c.req.header("x-teapot")) throw new GatewayError("FORBIDDEN", "No teapots.");
        await next();
      },
  });
  const cached = definePlugin({
    name: "cached",
    config: z.strictObject({}),
    create: () =>
      async function cached(c, next) {
        if (c.req.header("x-cached")) return c.text("from cache");
        await next();
      },
  });
  // A limits-like plugin reporting its state through the bag (or something unserializable).
  const limits = definePlugin({
    name: "limits",
    config: z.strictObject({}),
    create: () =>
      async function limits(c, next) {
        if (c.req.header("x-limit-state") === "circular") {
          const loop: Record<string, unknown> = {};
          loop.self = loop;
          c.var.bag.set(AUDIT_BAG.limitState, loop);
        } else c.var.bag.set(AUDIT_BAG.limitState, { limit: 10, remaining: 3 });
        await next();
      },
  });
  const app = createApp(
    defineGateway({
      upstreams: { echo: { url: "http://127.0.0.1:9", urlFromEnv: "TEST_ORIGIN_URL" } },
      plugins: [audit({ sink: "d1", flushIntervalMs: 20 }), cached(), denyTeapots(), limits()],
      routes: [{ name: "custom", path: "/custom/*", methods: ["GET"], upstream: "echo" }],
    }),
  );

  it("records a refusal with the refusing plugin's name and code, and a plugin's own answer as allowed", async () => {
    const m = unique("custom");
    const refused = await app.request(`https://gw.test/custom/${m}/1`, { headers: { "x-teapot": "1" } }, env);
    expect(refused.status).toBe(403);
    const answered = await app.request(`https://gw.test/custom/${m}/2`, { headers: { "x-cached": "1" } }, env);
    expect(await answered.text()).toBe("from cache");
    const forwarded = await app.request(`https://gw.test/custom/${m}/3`, {}, env);
    expect(forwarded.status).toBe(200);
    // Read as a client would: a streamed answer's event is recorded when its body ends.
    const forwardedBytes = (await forwarded.arrayBuffer()).byteLength;
    const rows = await waitForEvents("path LIKE ?", [`%${m}%`], 3);
    const byPath = Object.fromEntries(rows.map((r) => [r.path.split("/").at(-1), r]));
    expect(byPath["1"]).toMatchObject({ decision: "refused", decided_by: "deny-teapots", code: "FORBIDDEN", status: 403, origin_status: null });
    expect(byPath["1"].bytes_out).toBe(Number(refused.headers.get("content-length")));
    // A plugin's own answer has no declared length: its bytes are counted as they are sent.
    expect(byPath["2"]).toMatchObject({ decision: "allowed", decided_by: null, status: 200, origin_status: null, bytes_out: "from cache".length });
    expect(byPath["3"]).toMatchObject({ decision: "allowed", status: 200, origin_status: 200, bytes_out: forwardedBytes });
    expect(JSON.parse(byPath["3"].limit_state)).toEqual({ limit: 10, remaining: 3 });
  });

  it("never changes the response when the event cannot be built", async () => {
    const m = unique("broken");
    const res = await app.request(`https://gw.test/custom/${m}`, { headers: { "x-limit-state": "circular" } }, env);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { url: string }).url).toBe(`/${m}`);
  });
});

describe("sinks", () => {
  it("sends a flush to the queue as a few packs of events, each under Queues' 64 KB unit, in order", async () => {
    const sent: MessageSendRequest[][] = [];
    const recordingQueue = { sendBatch: async (messages: MessageSendRequest[]) => void sent.push(messages) } as unknown as Queue;
    // 100 events, some with the longest path an event keeps (2048 characters): the packs must still fit.
    const events = Array.from({ length: 100 }, (_, i) =>
      fakeEvent({ path: i % 10 === 0 ? `/echo/${"p".repeat(2042)}` : `/echo/${i}`, userId: `usr_${i}`, keyUsed: i % 2 === 0, limitState: i % 3 ? null : '{"limit":5}' }),
    ) as RequestEvent[];
    await deliver(events, "queue", { ...env, AUDIT_QUEUE: recordingQueue } as never);
    const messages = sent.flat();
    expect(messages.length).toBeGreaterThanOrEqual(2);
    expect(messages.length).toBeLessThanOrEqual(4);
    for (const call of sent) {
      expect(call.length).toBeLessThanOrEqual(100);
      expect(JSON.stringify(call.map((m) => m.body)).length).toBeLessThan(256_000);
    }
    for (const m of messages) {
      // Structured clone ("v8"), the binding's own encoding; its size is close to the JSON's for
      // these ASCII fields (workerd offers no bare serializer to measure it directly).
      expect(m.contentType).toBe("v8");
      expect(JSON.stringify(m.body).length).toBeLessThan(64 * 1024);
      // Rows: the field names once per message, not once per event.
      expect(Object.keys(m.body as object).sort()).toEqual(["fields", "rows"]);
    }
    // What the consumer reads back is every event, whole and in order.
    const decoded = messages.flatMap((m) => eventsOfMessage(structuredClone(m.body))!.events);
    expect(decoded).toEqual(events);
  });

  it("reads rows by the message's own field list, ignoring names that are not event fields", () => {
    const event = fakeEvent({ keyUsed: true });
    const fields = ["__proto__", "extra", ...Object.keys(event).reverse()];
    const row = [{ polluted: true }, "x", ...Object.values(event).reverse()];
    const [decoded] = eventsOfMessage({ fields, rows: [row] })!.events;
    expect(decoded).toEqual(event);
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect("polluted" in decoded!).toBe(false);
    expect("extra" in decoded!).toBe(false);
  });

  it("sends a typical flush of 100 events as one message", async () => {
    const sent: MessageSendRequest[][] = [];
    const recordingQueue = { sendBatch: async (messages: MessageSendRequest[]) => void sent.push(messages) } as unknown as Queue;
    const events = Array.from({ length: 100 }, (_, i) =>
      fakeEvent({ path: `/api/orders/${i}?limit=20`, userId: "usr_0123456789abcdef", keyId: "key_0123456789abcdef", group: "partners", clientIp: "203.0.113.7", keyUsed: true }),
    ) as RequestEvent[];
    await deliver(events, "queue", { ...env, AUDIT_QUEUE: recordingQueue } as never);
    expect(sent.flat().length).toBe(1);
    expect(eventsOfMessage(sent[0]![0]!.body)!.events).toEqual(events);
  });

  it("falls back to D1 when the queue refuses, and never rejects even when D1 fails too", async () => {
    const event = fakeEvent({ path: `/echo/${unique("fallback")}` });
    const failingQueue = { sendBatch: () => Promise.reject(new Error("queue down")) } as unknown as Queue;
    await deliver([event as RequestEvent], "queue", { ...env, AUDIT_QUEUE: failingQueue } as never);
    expect(await env.DB.prepare("SELECT status FROM request_events WHERE id = ?").bind(event.id).first()).toEqual({ status: 200 });

    const brokenDb = { prepare: () => { throw new Error("d1 down"); }, batch: () => Promise.reject(new Error("d1 down")) };
    const lost = fakeEvent();
    const started = Date.now();
    await expect(deliver([lost as RequestEvent], "d1", { ...env, DB: brokenDb } as never, 5)).resolves.toBeUndefined();
    expect(Date.now() - started).toBeGreaterThanOrEqual(5 + 20 + 80); // it retried with backoff before giving up
  });
});
