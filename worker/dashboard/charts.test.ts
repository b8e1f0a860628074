import { describe, expect, it } from "vitest";
import { countAxisMax, Lines, niceMax, StackedBars, STATUS_SERIES, TopBars } from "./charts";

const render = (el: unknown) => String(el);

describe("dashboard charts", () => {
  it("rounds axis maxima up to 1, 2, 2.5, 5 × 10^n", () => {
    expect([0, 1, 3, 7, 18, 240, 999].map(niceMax)).toEqual([1, 1, 5, 10, 20, 250, 1000]);
  });

  it("gives count axes whole-number gridlines", () => {
    expect([0, 1, 5, 10, 20, 30, 240, 1001].map(countAxisMax)).toEqual([4, 4, 8, 12, 20, 32, 240, 1200]);
  });

  it("stacks bars by series, scaled to the axis, with a text summary and a data table", () => {
    const svg = render(
      StackedBars({
        id: "s",
        title: "Requests by status",
        buckets: [
          { t: "2026-11-30T07:00:00.000Z", values: { "2xx": 15, "4xx": 5 } },
          { t: "2026-11-30T08:00:00.000Z", values: { "2xx": 2 } },
        ],
        series: STATUS_SERIES,
      }),
    );
    expect(svg).toContain('role="img"');
    expect(svg).toContain("Requests by status: 22 in 2 buckets; 2xx 17, 3xx 0, 4xx 5, 5xx 0, 1xx 0.");
    // Axis max 20 over a 188px plot: 15 → 141px, 5 → 47px, stacked from the baseline at y=200.
    expect(svg).toMatch(/<rect x="[\d.]+" y="59" width="[\d.]+" height="141" fill="#15803d">/);
    expect(svg).toMatch(/<rect x="[\d.]+" y="12" width="[\d.]+" height="47" fill="#b45309">/);
    expect(svg).toContain("<summary>Data table</summary>");
    expect(svg).toContain("<td>2026-11-30 07:00</td><td>15</td><td>0</td><td>5</td>");
  });

  it("draws gaps in lines where a bucket has no value", () => {
    const svg = render(
      Lines({
        id: "l",
        title: "Latency",
        unit: "ms",
        buckets: [
          { t: "2026-11-30T07:00:00.000Z", values: { p50: 10 } },
          { t: "2026-11-30T08:00:00.000Z", values: { p50: 20 } },
          { t: "2026-11-30T09:00:00.000Z", values: {} },
          { t: "2026-11-30T10:00:00.000Z", values: { p50: 5 } },
        ],
        series: [{ key: "p50", label: "p50", color: "#000" }],
      }),
    );
    expect(svg.match(/<polyline /g)).toHaveLength(1);
    expect(svg.match(/<circle /g)).toHaveLength(1);
    expect(svg).toContain("Latency: p50 up to 20 ms.");
  });

  it("escapes labels (user names) in top bars", () => {
    const svg = render(TopBars({ id: "t", title: "Top users", rows: [{ label: "<script>x</script>", value: 3 }] }));
    expect(svg).not.toContain("<script>");
    expect(svg).toContain("&lt;script&gt;");
  });
});
