import { describe, expect, it } from "vitest";
import { meterBody } from "./meter";

const bytes = (n: number) => new Uint8Array(n).fill(7);

/** A source that yields the given chunks, then ends (or fails, or stalls). */
function source(chunks: number[], end: "close" | "error" | "stall" = "close") {
  let i = 0;
  let cancelled: unknown = "not cancelled";
  const stream = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (i < chunks.length) return c.enqueue(bytes(chunks[i++]!));
      if (end === "close") c.close();
      else if (end === "error") c.error(new Error("origin reset"));
      else await new Promise(() => {}); // never answers again
    },
    cancel(reason) {
      cancelled = reason;
    },
  });
  return { stream, cancelled: () => cancelled };
}

async function drain(s: ReadableStream<Uint8Array>) {
  const r = s.getReader();
  let n = 0;
  for (let x = await r.read(); !x.done; x = await r.read()) n += x.value.byteLength;
  return n;
}

describe("meterBody", () => {
  it("passes every byte through and counts them; done at the end", async () => {
    const { stream, meter } = meterBody(source([100, 2000, 3]).stream);
    expect(await drain(stream)).toBe(2103);
    await meter.finished;
    expect(meter).toMatchObject({ bytes: 2103, read: true, outcome: "done" });
  });

  it("a reader that cancels: what it was handed so far, and the source is released", async () => {
    const src = source([10, 20, 30, 40]);
    const { stream, meter } = meterBody(src.stream);
    const r = stream.getReader();
    await r.read();
    await r.read();
    await r.cancel("client gone");
    await meter.finished;
    // High-water mark 0: nothing was pulled ahead of the reader.
    expect(meter).toMatchObject({ bytes: 30, outcome: "cancelled" });
    expect(src.cancelled()).toBe("client gone");
  });

  it("a source that fails: the bytes before it, the error, and the reader sees it too", async () => {
    const { stream, meter } = meterBody(source([5, 5], "error").stream);
    await expect(drain(stream)).rejects.toThrow("origin reset");
    await meter.finished;
    expect(meter.bytes).toBe(10);
    expect(meter.outcome).toBe("error");
    expect(String(meter.error)).toContain("origin reset");
  });

  it("settles as idle when nothing moves for idleMs, without stopping the stream", async () => {
    const { stream, meter } = meterBody(source([8], "stall").stream, { idleMs: 100 });
    const r = stream.getReader();
    await r.read();
    void r.read(); // waits on a source that never answers
    const started = Date.now();
    await meter.finished;
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(meter).toMatchObject({ bytes: 8, outcome: "idle" });
  });

  it("a body nobody reads is never locked, and its size stays unknown", async () => {
    const src = source([1]);
    const { meter } = meterBody(src.stream);
    expect(meter.read).toBe(false);
    expect(src.stream.locked).toBe(false);
  });
});
