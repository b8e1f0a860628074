// Small statistics helpers: medians and ranges over rounds.
export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function range(values) {
  const v = values.filter((x) => Number.isFinite(x));
  return v.length ? { min: Math.min(...v), max: Math.max(...v) } : { min: NaN, max: NaN };
}

/** "median (min–max)" with `digits` decimals. */
export function fmtRange(values, digits = 0) {
  const m = median(values);
  if (!Number.isFinite(m)) return "–";
  const r = range(values);
  const f = (x) => x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return values.length > 1 ? `${f(m)} (${f(r.min)}–${f(r.max)})` : f(m);
}

export const fmt = (x, digits = 0) => (Number.isFinite(x) ? x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "–");
