import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { createApp } from "../../worker/app";
import { eventsFor } from "../audit-helpers";
import gateway from "../fixtures/gateway.test.config";
import { originRecords, seedCaller, unique } from "../helpers";

/**
 * The audit queue throwing on every send: a real Queue binding wrapped so `send`/`sendBatch`
 * reject the way a Queue does when it is unavailable. The client's answer must not change, and
 * every event must still be stored (the audit sink falls back to D1).
 */
const brokenQueue = {
  send: () => Promise.reject(new Error("Queue send failed: service unavailable")),
  sendBatch: () => Promise.reject(new Error("Queue sendBatch failed: service unavailable")),
} as unknown as Queue;

const app = createApp(gateway);
async function call(path: string, headers: Record<string, string> = {}) {
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`https://gateway.test${path}`, { headers }), { ...env, AUDIT_QUEUE: brokenQueue }, ctx);
  const body = await res.text();
  await waitOnExecutionContext(ctx);
  return { res, body };
}

describe("audit queue down", () => {
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
});
