// The helpers that keep counting tests off window edges (test/window-edges.ts), on short windows.
import { describe, expect, it } from "vitest";
import { clearOfEdge, HOUR_MS, msToEdge, startOfFreshWindow } from "./window-edges";

describe("window edges", () => {
  it("measures the time to the next epoch-aligned edge; every UTC midnight is an hour edge", () => {
    expect(msToEdge(1_000, 12_250)).toBe(750);
    expect(msToEdge(1_000, 12_000)).toBe(1_000);
    expect(msToEdge(HOUR_MS, Date.UTC(2026, 11, 31, 23, 59, 30))).toBe(30_000);
    expect(Date.UTC(2027, 0, 1) % HOUR_MS).toBe(0);
  });

  it("clearOfEdge returns only when the next edge is at least the asked time away", async () => {
    for (let i = 0; i < 5; i++) {
      await clearOfEdge(700, 1_000);
      expect(msToEdge(1_000)).toBeGreaterThanOrEqual(700);
    }
    await expect(clearOfEdge(1_000, 1_000)).rejects.toThrow(/cannot fit/);
  });

  it("startOfFreshWindow returns just after an edge, with the end of the window it starts", async () => {
    const end = await startOfFreshWindow(500);
    const now = Date.now();
    expect(end - now).toBeGreaterThan(300);
    expect(end - now).toBeLessThanOrEqual(500);
    expect(end % 500).toBe(0);
  });
});
