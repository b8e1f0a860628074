import type { RequestEvent } from "./event";

/**
 * Upper bounds (ms, inclusive) of the fixed latency histogram kept in every rollup row
 * (columns l00…l15; the last bucket is open-ended). Percentiles are read from the merged
 * histogram: the reported p-quantile is the upper bound of the bucket holding it, so it is an
 * over-estimate by at most that bucket's width (and `null`-free: the open bucket reports the
 * largest finite bound, flagged by `overflow`).
 */
export const LATENCY_BUCKETS_MS = [5, 10, 25, 50, 75, 100, 150, 250, 400, 600, 1000, 1500, 2500, 5000, 10_000, Number.POSITIVE_INFINITY] as const;
export const HISTOGRAM_COLUMNS = LATENCY_BUCKETS_MS.map((_, i) => `l${String(i).padStart(2, "0")}`);

export const GRANULARITIES = { minute: 60_000, hour: 3_600_000, day: 86_400_000 } as const;
export type Granularity = keyof typeof GRANULARITIES;
export const DIMENSIONS = ["user", "group", "route", "all"] as const;
export type Dimension = (typeof DIMENSIONS)[number];

export function latencyBucket(ms: number): number {
  for (let i = 0; i < LATENCY_BUCKETS_MS.length; i++) if (ms <= LATENCY_BUCKETS_MS[i]!) return i;
  return LATENCY_BUCKETS_MS.length - 1;
}

/**
 * The rollup `decision` of an event: `allowed`; `allowed:fail-open` when a limit let it through
 * only because its backend was down (so a limiter outage shows, and is counted, per bucket); or
 * who refused and with which code.
 */
export const rollupDecision = (e: Pick<RequestEvent, "decision" | "decidedBy" | "code" | "limitState">) =>
  e.decision === "allowed" ? (e.limitState?.includes('"outcome":"fail-open"') ? "allowed:fail-open" : "allowed") : `${e.decidedBy ?? "gateway"}:${e.code ?? "-"}`;

function dimValue(e: RequestEvent, dim: Dimension): string {
  if (dim === "all") return "*";
  const v = dim === "user" ? e.userId : dim === "group" ? e.group : e.route;
  return v ?? "-";
}

/** Column order of a rollup tuple (matches the upsert in store.ts). */
export const ROLLUP_COLUMNS = [
  "granularity",
  "bucket",
  "dim",
  "value",
  "decision",
  "requests",
  "s1xx",
  "s2xx",
  "s3xx",
  "s4xx",
  "s5xx",
  "latency_sum_ms",
  "bytes_in",
  "bytes_out",
  ...HISTOGRAM_COLUMNS,
] as const;
const KEY_LEN = 5;

/**
 * Aggregates events into rollup increments (one tuple per granularity × bucket × dimension ×
 * value × decision), so a batch of 100 events costs a handful of upserts, not 1,200.
 */
export function rollupIncrements(events: readonly RequestEvent[]): Array<Array<string | number>> {
  const rows = new Map<string, Array<string | number>>();
  for (const e of events) {
    const decision = rollupDecision(e);
    const cls = Math.min(5, Math.max(1, Math.floor(e.status / 100)));
    const lat = latencyBucket(e.latencyMs);
    for (const [g, size] of Object.entries(GRANULARITIES)) {
      const bucket = Math.floor(e.ts / size) * size;
      for (const dim of DIMENSIONS) {
        const value = dimValue(e, dim);
        const key = `${g}|${bucket}|${dim}|${value}|${decision}`;
        let row = rows.get(key);
        if (!row) {
          row = [g, bucket, dim, value, decision, ...new Array<number>(ROLLUP_COLUMNS.length - KEY_LEN).fill(0)];
          rows.set(key, row);
        }
        const add = (col: string, n: number) => {
          const i = ROLLUP_COLUMNS.indexOf(col as (typeof ROLLUP_COLUMNS)[number]);
          row![i] = (row![i] as number) + n;
        };
        add("requests", 1);
        add(`s${cls}xx`, 1);
        add("latency_sum_ms", e.latencyMs);
        add("bytes_in", e.bytesIn ?? 0);
        add("bytes_out", e.bytesOut ?? 0);
        add(HISTOGRAM_COLUMNS[lat]!, 1);
      }
    }
  }
  return [...rows.values()];
}

/** p-quantile (0–1) of a histogram: the upper bound of the bucket where the cumulative count reaches it. */
export function histogramQuantile(counts: readonly number[], p: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = Math.ceil(p * total);
  let cum = 0;
  for (let i = 0; i < counts.length; i++) {
    cum += counts[i]!;
    if (cum >= rank) {
      const bound = LATENCY_BUCKETS_MS[i]!;
      return Number.isFinite(bound) ? bound : LATENCY_BUCKETS_MS[LATENCY_BUCKETS_MS.length - 2]!;
    }
  }
  return null;
}
