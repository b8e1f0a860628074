/**
 * Byte counting for bodies whose size is not declared (no Content-Length: chunked or streamed),
 * so the audit trail can record what actually went through the gateway without buffering it.
 * Only bodies without a length get one: the common case (Content-Length present) adds no stream.
 */

/** How a metered body stream ended (as far as the audit trail waits for it). */
export type MeterOutcome =
  /** Read to the end. */
  | "done"
  /** The reader cancelled before the end: for a response, the client stopped reading (aborted). */
  | "cancelled"
  /** The source failed mid-stream (origin reset, or a limit such as `maxResponseBytes` cut it off). */
  | "error"
  /**
   * No byte moved for `idleMs`. Measured in workerd: when a client disconnects while the stream
   * waits on an origin's body, the runtime neither cancels the stream nor lets the pending read
   * settle, so without this the wait would outlive the request and the event would be lost.
   */
  | "idle";

export interface BodyMeter {
  /** Bytes handed on to the reader so far. */
  bytes: number;
  /** True once the reader asked for data at all (an unread body's size stays unknown). */
  read: boolean;
  /** How the stream ended; null while it is still flowing. */
  outcome: MeterOutcome | null;
  /** The source's error when `outcome` is `error`. */
  error: unknown;
  /** Settles (never rejects) once `outcome` is set. */
  finished: Promise<void>;
}

/**
 * Wraps `source` in a stream that hands every chunk on unchanged and counts its bytes. A chunk
 * is counted when the reader takes it (high-water mark 0: nothing is pulled ahead), so on a
 * client abort `bytes` is what was handed to the runtime for sending, not what was prefetched.
 * A pull-based stream rather than a TransformStream, because its `cancel` (reader gone) and a
 * failed `read` (source broken) are told apart — a transformer's `cancel` sees both.
 *
 * With `idleMs`, `finished` also settles (`idle`) once no chunk has moved for that long; the
 * stream itself keeps flowing and counting. One timer per idle period, not one per chunk.
 *
 * @example
 * const { stream, meter } = meterBody(res.body, { idleMs: 10_000 });
 * meter.finished.then(() => console.log(meter.bytes, meter.outcome));
 * return new Response(stream, res);
 */
export function meterBody(source: ReadableStream<Uint8Array>, { idleMs }: { idleMs?: number } = {}): { stream: ReadableStream<Uint8Array>; meter: BodyMeter } {
  let settle!: () => void;
  const meter: BodyMeter = { bytes: 0, read: false, outcome: null, error: undefined, finished: new Promise<void>((r) => (settle = r)) };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lastMove = Date.now();
  const end = (outcome: MeterOutcome, error?: unknown) => {
    if (meter.outcome !== null) return;
    meter.outcome = outcome;
    meter.error = error;
    if (timer !== undefined) clearTimeout(timer);
    settle();
  };
  if (idleMs !== undefined) {
    const watch = (wait: number) => {
      timer = setTimeout(() => {
        const quiet = Date.now() - lastMove;
        if (quiet >= idleMs) end("idle");
        else watch(idleMs - quiet);
      }, wait);
    };
    watch(idleMs);
  }
  // Taken on the first pull, so a body nobody reads is never locked (and can still be cancelled).
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        meter.read = true;
        reader ??= source.getReader();
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (err) {
          end("error", err);
          controller.error(err);
          return;
        }
        lastMove = Date.now();
        if (chunk.done) {
          end("done");
          controller.close();
          return;
        }
        meter.bytes += chunk.value.byteLength;
        controller.enqueue(chunk.value);
      },
      async cancel(reason) {
        end("cancelled", reason);
        try {
          await (reader ? reader.cancel(reason) : source.cancel(reason));
        } catch {
          // the source is already closed or broken: nothing left to release
        }
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, meter };
}
