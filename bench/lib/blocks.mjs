// The building blocks issue #6 quotes as its reference ("SHA-256 + in-isolate map lookup + header
// rewrite 0.85; one Durable Object call per request 0.49; one @upstash/ratelimit call 0.29; one
// Queue send 0.40"), each on bare, written the plainest way (bench/worker/entry.ts, `blockApp`).
// One list for bench/run.mjs and bench/instructions.mjs; run only when named.

/** name = the worker's BENCH_SCENARIO; `durableObjects` and `limiter: "upstash"` say what the worker needs bound. */
export const BLOCKS = [
  { name: "block-sha-map-rewrite", label: "bare + SHA-256 of the key, isolate map lookup, credential header rewrite" },
  { name: "block-map-rewrite", label: "bare + isolate map lookup of the key, credential header rewrite (no hash)" },
  { name: "block-do", label: "bare + one Durable Object call per request", durableObjects: { BLOCK_DO: { className: "BlockDurableObject", unsafePreventEviction: true } } },
  { name: "block-queue", label: "bare + one Queue send per request" },
  { name: "block-upstash", label: "bare + one @upstash/ratelimit call per request, through the bridge", limiter: "upstash" },
];
