import type { FC } from "hono/jsx";

/**
 * Server-rendered SVG charts: no script, no library, readable on a laptop screen. Each chart is a
 * `role="img"` with a text summary, and the numbers behind it sit in a collapsible table for
 * screen readers and for anyone who wants the exact values.
 */

export interface Series {
  key: string;
  label: string;
  color: string;
}
export interface Bucket {
  /** Bucket start, ISO. */
  t: string;
  values: Record<string, number>;
}

const W = 560;
const H = 240;
const PAD = { left: 52, right: 12, top: 12, bottom: 40 };

/** An axis maximum for counts: four whole-number gridline steps (no "0.3 requests"). */
export function countAxisMax(max: number): number {
  const x = Math.max(1, max / 4);
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= x && Number.isInteger(m * p)) return 4 * m * p;
  return 40 * p;
}

/** 1, 2, 5 × 10^n at or above `max`, so gridlines land on round numbers. */
export function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

const fmt = (n: number) => (n >= 10_000 ? `${Math.round(n / 1000)}k` : n >= 1000 ? `${(n / 1000).toFixed(1)}k` : Number.isInteger(n) ? String(n) : n.toFixed(1));
/** "07:00" for minute/hour buckets, "11-30" for days (the data table has full timestamps). */
const tick = (iso: string, days: boolean) => (days ? iso.slice(5, 10) : iso.slice(11, 16));

const Axes: FC<{ max: number; unit?: string | undefined }> = ({ max, unit }) => (
  <g>
    {[0, 0.25, 0.5, 0.75, 1].map((f) => {
      const y = PAD.top + (1 - f) * (H - PAD.top - PAD.bottom);
      return (
        <g>
          <line x1={PAD.left} x2={W - PAD.right} y1={y} y2={y} stroke={f === 0 ? "#6b7280" : "#e5e7eb"} />
          <text x={PAD.left - 6} y={y + 4} text-anchor="end">
            {fmt(max * f)}
            {f === 1 && unit ? ` ${unit}` : ""}
          </text>
        </g>
      );
    })}
  </g>
);

const XTicks: FC<{ buckets: Bucket[]; x: (i: number) => number }> = ({ buckets, x }) => {
  const days = buckets.length > 1 && Date.parse(buckets[1]!.t) - Date.parse(buckets[0]!.t) >= 86_400_000;
  const every = Math.max(1, Math.ceil(buckets.length / 6));
  return (
    <g>
      {buckets.map((b, i) =>
        i % every === 0 ? (
          <text x={x(i)} y={H - PAD.bottom + 16} text-anchor="middle">
            {tick(b.t, days)}
          </text>
        ) : null,
      )}
    </g>
  );
};

const Legend: FC<{ series: Series[] }> = ({ series }) => (
  <g>
    {series.map((s, i) => (
      <g transform={`translate(${PAD.left + i * 110}, ${H - 12})`}>
        <rect width="10" height="10" y="-9" fill={s.color} />
        <text x="14">{s.label}</text>
      </g>
    ))}
  </g>
);

const DataTable: FC<{ buckets: Bucket[]; series: Series[]; caption: string }> = ({ buckets, series, caption }) => (
  <details>
    <summary>Data table</summary>
    <table>
      <caption class="skip">{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Bucket (UTC)</th>
          {series.map((s) => (
            <th scope="col">{s.label}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {buckets.map((b) => (
          <tr>
            <td>{b.t.replace("T", " ").slice(0, 16)}</td>
            {series.map((s) => (
              <td>{b.values[s.key] ?? 0}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  </details>
);

/** Stacked bars per bucket (e.g. requests by status class). */
export const StackedBars: FC<{ id: string; title: string; buckets: Bucket[]; series: Series[] }> = ({ id, title, buckets, series }) => {
  const totals = buckets.map((b) => series.reduce((n, s) => n + (b.values[s.key] ?? 0), 0));
  const max = countAxisMax(Math.max(0, ...totals));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(1, buckets.length);
  const barW = Math.max(1, Math.min(28, slot * 0.8));
  const x = (i: number) => PAD.left + slot * i + slot / 2;
  const total = totals.reduce((a, b) => a + b, 0);
  const summary = `${title}: ${total} in ${buckets.length} buckets; ${series.map((s) => `${s.label} ${buckets.reduce((n, b) => n + (b.values[s.key] ?? 0), 0)}`).join(", ")}.`;
  return (
    <figure class="card" aria-labelledby={`${id}-title`}>
      <figcaption id={`${id}-title`}>
        <strong>{title}</strong>
      </figcaption>
      <svg id={id} viewBox={`0 0 ${W} ${H}`} width="100%" role="img" aria-label={summary}>
        <title>{summary}</title>
        <Axes max={max} />
        {buckets.map((b, i) => {
          let y = PAD.top + plotH;
          return (
            <g>
              {series.map((s) => {
                const v = b.values[s.key] ?? 0;
                if (!v) return null;
                const h = (v / max) * plotH;
                y -= h;
                return (
                  <rect x={x(i) - barW / 2} y={y} width={barW} height={h} fill={s.color}>
                    <title>{`${b.t.slice(0, 16).replace("T", " ")} ${s.label}: ${v}`}</title>
                  </rect>
                );
              })}
            </g>
          );
        })}
        <XTicks buckets={buckets} x={x} />
        <Legend series={series} />
      </svg>
      <DataTable buckets={buckets} series={series} caption={title} />
    </figure>
  );
};

/** Lines per series (e.g. latency percentiles); gaps where a bucket has no value. */
export const Lines: FC<{ id: string; title: string; buckets: Bucket[]; series: Series[]; unit?: string }> = ({ id, title, buckets, series, unit }) => {
  const values = buckets.flatMap((b) => series.map((s) => b.values[s.key]).filter((v): v is number => typeof v === "number"));
  const max = niceMax(Math.max(0, ...values));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(1, buckets.length);
  const x = (i: number) => PAD.left + slot * i + slot / 2;
  const y = (v: number) => PAD.top + (1 - v / max) * plotH;
  const summary = `${title}: ${series.map((s) => `${s.label} up to ${fmt(Math.max(0, ...buckets.map((b) => b.values[s.key] ?? 0)))}${unit ? ` ${unit}` : ""}`).join(", ")}.`;
  return (
    <figure class="card" aria-labelledby={`${id}-title`}>
      <figcaption id={`${id}-title`}>
        <strong>{title}</strong>
      </figcaption>
      <svg id={id} viewBox={`0 0 ${W} ${H}`} width="100%" role="img" aria-label={summary}>
        <title>{summary}</title>
        <Axes max={max} unit={unit} />
        {series.map((s) => {
          const pts = buckets.map((b, i) => (typeof b.values[s.key] === "number" ? `${x(i).toFixed(1)},${y(b.values[s.key]!).toFixed(1)}` : null));
          // Split into runs at missing buckets so a gap is drawn as a gap, not a slope.
          const runs: string[][] = [[]];
          for (const p of pts) p ? runs[runs.length - 1]!.push(p) : runs.push([]);
          return (
            <g>
              {runs
                .filter((r) => r.length)
                .map((r) => (r.length === 1 ? <circle cx={r[0]!.split(",")[0]} cy={r[0]!.split(",")[1]} r="3" fill={s.color} /> : <polyline points={r.join(" ")} fill="none" stroke={s.color} stroke-width="2" />))}
            </g>
          );
        })}
        <XTicks buckets={buckets} x={x} />
        <Legend series={series} />
      </svg>
      <DataTable buckets={buckets} series={series} caption={title} />
    </figure>
  );
};

/** Horizontal bars, largest first (e.g. top users by requests). */
export const TopBars: FC<{ id: string; title: string; rows: Array<{ label: string; value: number; href?: string }>; color?: string }> = ({ id, title, rows, color = "#1d4ed8" }) => {
  const max = niceMax(Math.max(0, ...rows.map((r) => r.value)));
  const rowH = 24;
  const h = Math.max(1, rows.length) * rowH + 8;
  const labelW = 200;
  const summary = `${title}: ${rows.map((r) => `${r.label} ${r.value}`).join(", ") || "no data"}.`;
  return (
    <figure class="card" aria-labelledby={`${id}-title`}>
      <figcaption id={`${id}-title`}>
        <strong>{title}</strong>
      </figcaption>
      <svg id={id} viewBox={`0 0 ${W} ${h}`} width="100%" role="img" aria-label={summary}>
        <title>{summary}</title>
        {rows.map((r, i) => {
          const w = ((W - labelW - 60) * r.value) / max;
          return (
            <g transform={`translate(0, ${i * rowH + 4})`}>
              <text x={labelW - 8} y="15" text-anchor="end">
                {r.label.length > 28 ? `${r.label.slice(0, 27)}…` : r.label}
              </text>
              <rect x={labelW} y="3" width={Math.max(1, w)} height={rowH - 8} fill={color} />
              <text x={labelW + w + 6} y="15">
                {fmt(r.value)}
              </text>
            </g>
          );
        })}
      </svg>
    </figure>
  );
};

/** Colours for status classes; each passes 3:1 against white (WCAG non-text contrast). */
export const STATUS_SERIES: Series[] = [
  { key: "2xx", label: "2xx", color: "#15803d" },
  { key: "3xx", label: "3xx", color: "#0369a1" },
  { key: "4xx", label: "4xx", color: "#b45309" },
  { key: "5xx", label: "5xx", color: "#b91c1c" },
  { key: "1xx", label: "1xx", color: "#6b7280" },
];
export const LATENCY_SERIES: Series[] = [
  { key: "p50", label: "p50", color: "#15803d" },
  { key: "p95", label: "p95", color: "#b45309" },
  { key: "p99", label: "p99", color: "#b91c1c" },
];
export const DECISION_COLORS = ["#15803d", "#b45309", "#7c3aed", "#b91c1c", "#0369a1", "#6b7280"];
