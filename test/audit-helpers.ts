import { env } from "cloudflare:test";
import { expect } from "vitest";

export type EventRow = Record<string, any>;

/** Polls D1 until `n` request events match `where` (SQL over request_events), then returns them. */
export async function waitForEvents(where: string, binds: unknown[], n: number, timeoutMs = 8_000): Promise<EventRow[]> {
  const deadline = Date.now() + timeoutMs;
  let rows: EventRow[] = [];
  while (Date.now() < deadline) {
    rows = (await env.DB.prepare(`SELECT * FROM request_events WHERE ${where} ORDER BY ts, id`).bind(...binds).all<EventRow>()).results;
    if (rows.length >= n && rows.every((r) => r.hash !== null)) return rows;
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(rows.length, `events matching ${where}`).toBe(n);
  return rows;
}

/** Events whose stored path contains `marker`. */
export const eventsFor = (marker: string, n: number) => waitForEvents(`path LIKE ?`, [`%${marker}%`], n);

/** A stored row back in the shape the queue carries (what a redelivery would contain). */
export function rowToEvent(r: EventRow) {
  return {
    id: r.id,
    ts: r.ts,
    userId: r.user_id,
    keyId: r.key_id,
    group: r.group,
    route: r.route,
    method: r.method,
    path: r.path,
    clientIp: r.client_ip,
    country: r.country,
    colo: r.colo,
    decision: r.decision,
    decidedBy: r.decided_by,
    code: r.code,
    reason: r.reason,
    status: r.status,
    originStatus: r.origin_status,
    bytesIn: r.bytes_in,
    bytesOut: r.bytes_out,
    latencyMs: r.latency_ms,
    originLatencyMs: r.origin_latency_ms,
    limitState: r.limit_state,
  };
}

const hex = (n: number) => [...crypto.getRandomValues(new Uint8Array(n))].map((b) => b.toString(16).padStart(2, "0")).join("");

/** A synthetic event (as the gateway would build it) for consumer and retention tests. */
export function fakeEvent(over: Partial<ReturnType<typeof rowToEvent>> & { keyUsed?: boolean } = {}) {
  return {
    id: `req_${hex(16)}`,
    ts: Date.now(),
    userId: null,
    keyId: null,
    group: null,
    route: "echo-read",
    method: "GET",
    path: "/echo/fake",
    clientIp: null,
    country: null,
    colo: null,
    decision: "allowed",
    decidedBy: null,
    code: null,
    reason: null,
    status: 200,
    originStatus: 200,
    bytesIn: 0,
    bytesOut: 10,
    latencyMs: 12,
    originLatencyMs: 8,
    limitState: null,
    ...over,
  };
}
