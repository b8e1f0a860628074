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
