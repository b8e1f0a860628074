import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { createApp } from "../../worker/app";
import { eventsFor } from "../audit-helpers";
import gateway from "../fixtures/gateway.test.config";
import { originRecords, seedCaller, unique } from "../helpers";
import { clearOfHourEdge } from "../window-edges";

/**
 * The audit queue throwing on every send: a real Queue binding wrapped so `send`/`sendBatch`
 * reject the way a Queue does when it is unavailable. The client's answer must not change, and
 * every event must still be stored (the audit sink falls back to D1).
 */
const brokenQueue = {
  send: () => Promise.reject(new Error("Queue send failed: service unavailable")),
  sendBatch: () => Promise.reject(new Error("Queue sendBatch failed: service unavailable")),
} as unknown as Queue;

/** A Queue binding whose calls throw synchronously, before returning any promise. */
const throwingQueue = {
  send: () => {
    throw new Error("Queue binding is broken");
  },
  sendBatch: () => {
    throw new Error("Queue binding is broken");
  },
} as unknown as Queue;

/** A Queue binding whose sends never settle (a hung connection). */
const hangingQueue = {
  send: () => new Promise(() => {}),
  sendBatch: () => new Promise(() => {}),
} as unknown as Queue;

const app = createApp(gateway);
async function call(path: string, headers: Record<string, string> = {}, queue: Queue = brokenQueue) {
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`https://gateway.test${path}`, { headers }), { ...env, AUDIT_QUEUE: queue }, ctx);
  const body = await res.text();
  await waitOnExecutionContext(ctx);
  return { res, body };
}

describe("audit queue down", () => {
  // The limit case counts against a daily quota: never across an hour edge (test/window-edges.ts).
  beforeEach(() => clearOfHourEdge(20_000), 30_000);

  it("allowed and refused requests answer exactly as usual, and every event is still recorded (D1 fallback)", async () => {
    const quiet = vi.spyOn(console, "error").mockImplementation(() => {});
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      const { key } = await seedCaller({ permissions: ["echo:read"] });
      const m = unique("auditq");
      const ok = await call(`/echo/${m}-ok`, { authorization: `Bearer ${key}` });
      expect(ok.res.status).toBe(200);
      expect(JSON.parse(ok.body).url).toBe(`/${m}-ok`);
      const denied = await call(`/echo/${m}-denied`);
      expect(denied.res.status).toBe(401);
      expect(JSON.parse(denied.body).code).toBe("KEY_INVALID");
      expect(await originRecords(`${m}-ok`)).toHaveLength(1);
      expect(await originRecords(`${m}-denied`)).toHaveLength(0);

      const rows = await eventsFor(m, 2);
      expect(rows).toHaveLength(2);
      expect(rows.map((r) => r.status).sort()).toEqual([200, 401]);
      expect(JSON.stringify(rows)).not.toContain(key);
    } finally {
      quiet.mockRestore();
      warn.mockRestore();
    }
  });

  it.each([
    ["rejecting", brokenQueue],
    ["throwing", throwingQueue],
  ] as const)("limit refusals with the queue %s: the same answers as with a working queue, and every event stored with its limit state", async (_n, queue) => {
    const quiet = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      /** Everything a client sees, minus what differs per request or per second. */
      const shape = (r: { res: Response; body: string }) =>
        JSON.stringify({
          status: r.res.status,
          headers: [...r.res.headers].filter(([k]) => !["x-request-id", "ratelimit-reset", "retry-after", "date"].includes(k)),
          // The two callers differ in ids, names and marker only.
          body: r.body
            .replace(/req_[0-9a-f]{32}/g, "req_ID")
            .replace(/\b(usr|key)_[0-9A-Za-z]+/g, "$1_ID")
            .replace(/user-[a-z0-9]+-[a-z0-9]+/g, "user-NAME")
            .replace(/"url":"[^"]*"/, '"url":"…"'),
          retryAfter: r.res.headers.has("retry-after"),
        });
      // The `both` route: a quota of 3 a day (and a loose rate limit); the broken-limiter route fails closed.
      const sequence = async (key: string, m: string, q?: Queue) => {
        const out = [];
        for (let i = 0; i < 4; i++) out.push(await call(`/both/${m}/${i}`, { authorization: `Bearer ${key}` }, q));
        out.push(await call(`/fail-do-broken-closed/${m}/x`, { authorization: `Bearer ${key}` }, q));
        return out;
      };
      const down = await seedCaller({ permissions: ["echo:read"] });
      const up = await seedCaller({ permissions: ["echo:read"] });
      const m = unique("auditq-lim");
      const withQueueDown = await sequence(down.key, m, queue);
      const withQueueUp = await sequence(up.key, unique("auditq-lim-up"), env.AUDIT_QUEUE);
      expect(withQueueDown.map((r) => r.res.status)).toEqual([200, 200, 200, 429, 503]);
      expect(withQueueDown.map(shape)).toEqual(withQueueUp.map(shape));
      expect(await originRecords(m)).toHaveLength(3);

      const rows = await eventsFor(m, 5);
      const byPath = new Map(rows.map((r) => [r.path as string, r]));
      expect(byPath.get(`/both/${m}/3`)).toMatchObject({ status: 429, code: "QUOTA_EXCEEDED", decision: "refused", user_id: down.user.id });
      expect(JSON.parse(byPath.get(`/both/${m}/3`)!.limit_state)).toEqual(expect.arrayContaining([expect.objectContaining({ name: "both-quota", outcome: "refused" })]));
      expect(byPath.get(`/fail-do-broken-closed/${m}/x`)).toMatchObject({ status: 503, code: "LIMITER_UNAVAILABLE", decision: "refused" });
      expect(JSON.stringify(rows)).not.toContain(down.key);
    } finally {
      quiet.mockRestore();
    }
  });

  it("a queue send that hangs: the answer is unchanged and the event reaches D1 once the send times out", async () => {
    const quiet = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const { key } = await seedCaller({ permissions: ["echo:read"] });
      const m = unique("auditq-hang");
      const started = Date.now();
      const ok = await call(`/echo/${m}`, { authorization: `Bearer ${key}` }, hangingQueue);
      expect(ok.res.status).toBe(200);
      expect(JSON.parse(ok.body).url).toBe(`/${m}`);
      // waitOnExecutionContext returned: the flush gave up on the queue instead of hanging.
      expect(Date.now() - started).toBeLessThan(15_000);
      const rows = await eventsFor(m, 1);
      expect(rows).toHaveLength(1);
      expect(rows[0]!.status).toBe(200);
    } finally {
      quiet.mockRestore();
    }
  });
});
