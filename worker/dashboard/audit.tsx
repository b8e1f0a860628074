import { Hono } from "hono";
import type { Child } from "hono/jsx";
import { listAdminEvents, listRequestEvents, queryUsage } from "../audit/query";
import { GRANULARITIES, type Granularity } from "../audit/rollups";
import * as users from "../services/users";
import type { UserView } from "../services/users";
import { DECISION_COLORS, LATENCY_SERIES, Lines, StackedBars, STATUS_SERIES, TopBars, type Bucket, type Series } from "./charts";
import type { DashboardContext, DashboardEnv } from "./forms";
import { addNav, BASE, Field, FilterSelect, Layout, when } from "./layout";
import { userSections } from "./users";

addNav({ id: "usage", href: `${BASE}/usage`, label: "Usage" });
addNav({ id: "requests", href: `${BASE}/audit/requests`, label: "Request audit" });
addNav({ id: "admin-audit", href: `${BASE}/audit/admin`, label: "Admin audit" });

const RANGES: Record<string, { label: string; span: number; granularity: Granularity }> = {
  "1h": { label: "Last hour (per minute)", span: 3_600_000, granularity: "minute" },
  "24h": { label: "Last 24 hours (per hour)", span: 86_400_000, granularity: "hour" },
  "30d": { label: "Last 30 days (per day)", span: 30 * 86_400_000, granularity: "day" },
};

type UsageRow = Awaited<ReturnType<typeof queryUsage>>["data"][number];

/** Every bucket start in [from, to), so quiet periods show as zero instead of vanishing. */
function bucketStarts(from: Date, to: Date, g: Granularity): string[] {
  const size = GRANULARITIES[g];
  const out: string[] = [];
  for (let t = from.getTime(); t < to.getTime(); t += size) out.push(new Date(t).toISOString());
  return out;
}

/**
 * Chart buckets from usage rows, combining rows of several values (routes) in one bucket:
 * counts add up; percentiles cannot be added, so they take the largest (the slowest route).
 */
function toBuckets(rows: UsageRow[], starts: string[], pick: (r: UsageRow) => Record<string, number | null>, combine: "sum" | "max" = "sum"): Bucket[] {
  const by = new Map<string, Record<string, number>>();
  for (const r of rows) {
    const t = new Date(r.bucket).toISOString();
    const cur = by.get(t) ?? {};
    for (const [k, v] of Object.entries(pick(r))) if (typeof v === "number") cur[k] = combine === "sum" ? (cur[k] ?? 0) + v : Math.max(cur[k] ?? 0, v);
    by.set(t, cur);
  }
  return starts.map((t) => ({ t, values: by.get(t) ?? {} }));
}

/** The n most frequent decisions become series (`allowed` first); the rest are summed as "other". */
function decisionSeries(rows: UsageRow[], n = 5): { series: Series[]; pick: (r: UsageRow) => Record<string, number> } {
  const totals = new Map<string, number>();
  for (const r of rows) for (const [k, v] of Object.entries(r.decisions)) totals.set(k, (totals.get(k) ?? 0) + v);
  const top = [...totals.entries()]
    .sort((a, b) => (a[0] === "allowed" ? -1 : b[0] === "allowed" ? 1 : b[1] - a[1]))
    .slice(0, n)
    .map(([k]) => k);
  const series = top.map((k, i) => ({ key: k, label: k, color: DECISION_COLORS[i % DECISION_COLORS.length]! }));
  if (totals.size > n) series.push({ key: "other", label: "other", color: "#6b7280" });
  return {
    series,
    pick: (r) => {
      const out: Record<string, number> = {};
      for (const [k, v] of Object.entries(r.decisions)) {
        const key = top.includes(k) ? k : "other";
        out[key] = (out[key] ?? 0) + v;
      }
      return out;
    },
  };
}

function UsageCharts({ idPrefix, rows, starts, latencyTitle = "Latency percentiles" }: { idPrefix: string; rows: UsageRow[]; starts: string[]; latencyTitle?: string }): Child {
  const d = decisionSeries(rows);
  return (
    <>
      <StackedBars id={`${idPrefix}-status`} title="Requests by status class" buckets={toBuckets(rows, starts, (r) => r.status)} series={STATUS_SERIES} />
      <StackedBars id={`${idPrefix}-decision`} title="Requests by decision" buckets={toBuckets(rows, starts, d.pick)} series={d.series} />
      <Lines id={`${idPrefix}-latency`} title={latencyTitle} unit="ms" buckets={toBuckets(rows, starts, (r) => ({ p50: r.latencyMs.p50, p95: r.latencyMs.p95, p99: r.latencyMs.p99 }), "max")} series={LATENCY_SERIES} />
    </>
  );
}

const rangeOf = (c: DashboardContext) => {
  const key = c.req.query("range") ?? "24h";
  const r = RANGES[key] ?? RANGES["24h"]!;
  // Whole buckets, the current (partial) one last: "last hour" is exactly 60 minute buckets.
  const size = GRANULARITIES[r.granularity];
  const to = new Date();
  const from = new Date(Math.floor(to.getTime() / size) * size + size - r.span);
  return { key: RANGES[key] ? key : "24h", ...r, from, to };
};

export const auditPages = new Hono<DashboardEnv>();

auditPages.get("/usage", async (c) => {
  const { db } = c.var.services;
  const r = rangeOf(c);
  // Per route, without "-" (requests that matched no route: the admin API, this dashboard,
  // unknown paths), so the charts show the traffic that went through the gateway's routes.
  const [perRoute, perUser] = await Promise.all([
    queryUsage(db, { by: "route", granularity: r.granularity, from: r.from, to: r.to }),
    queryUsage(db, { by: "user", granularity: r.granularity, from: r.from, to: r.to }),
  ]);
  const starts = bucketStarts(r.from, r.to, r.granularity);
  const totals = new Map<string, number>();
  for (const row of perUser.data) if (row.value !== "-") totals.set(row.value, (totals.get(row.value) ?? 0) + row.requests);
  const top = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10);
  const names = new Map<string, string>();
  await Promise.all(top.map(async ([id]) => names.set(id, await users.getUser(db, id).then((u) => u.name, () => id))));
  return c.html(
    <Layout title="Usage" nav="usage" csrf={c.var.session.csrfToken}>
      <RangeForm action={`${BASE}/usage`} current={r.key} />
      <p class="muted">Requests through the gateway's routes (admin API and dashboard traffic excluded), from the usage rollups.</p>
      <div class="charts">
        <UsageCharts idPrefix="all" rows={perRoute.data.filter((d) => d.value !== "-")} starts={starts} latencyTitle="Latency percentiles (slowest route per bucket)" />
        <TopBars id="top-users" title="Top proxy users by requests" rows={top.map(([id, n]) => ({ label: names.get(id) ?? id, value: n }))} />
      </div>
    </Layout>,
  );
});

const RangeForm = ({ action, current }: { action: string; current: string }) => (
  <form class="card row" method="get" action={action} aria-label="Choose the time range">
    <Field id="range" label="Time range">
      <select id="range" name="range">
        {Object.entries(RANGES).map(([k, v]) => (
          <option value={k} selected={k === current}>
            {v.label}
          </option>
        ))}
      </select>
    </Field>
    <button type="submit">Show</button>
  </form>
);

// The user page gets its own usage charts.
userSections.push(async (c: DashboardContext, user: UserView) => {
  const r = rangeOf(c);
  const usage = await queryUsage(c.var.services.db, { by: "user", value: user.id, granularity: r.granularity, from: r.from, to: r.to });
  const total = usage.data.reduce((n, d) => n + d.requests, 0);
  return (
    <section aria-labelledby="usage-title">
      <h2 id="usage-title">Usage ({RANGES[r.key]!.label.toLowerCase()})</h2>
      <p class="muted">
        {total} request(s). <a href={`${BASE}/audit/requests?userId=${encodeURIComponent(user.id)}`}>See this user's requests</a>
      </p>
      <div class="charts">
        <UsageCharts idPrefix="user" rows={usage.data} starts={bucketStarts(r.from, r.to, r.granularity)} />
      </div>
    </section>
  );
});

const DECISIONS = ["allowed", "refused", "error"] as const;
const CLASSES = ["2xx", "3xx", "4xx", "5xx"] as const;
const LIMIT_OUTCOMES = ["refused", "dry-run-refused", "fail-open", "fail-closed"] as const;

auditPages.get("/audit/requests", async (c) => {
  const q = c.req.query();
  const decision = DECISIONS.find((d) => d === q.decision);
  const statusClass = CLASSES.find((s) => s === q.statusClass);
  const limitOutcome = LIMIT_OUTCOMES.find((o) => o === q.limitOutcome);
  const filters = { userId: q.userId || undefined, route: q.route || undefined, code: q.code || undefined, decision, statusClass, limitOutcome };
  const page = await listRequestEvents(c.var.services.db, { ...filters, limit: 50, cursor: q.cursor || undefined });
  const qs = new URLSearchParams(Object.entries(filters).filter((e): e is [string, string] => !!e[1]));
  return c.html(
    <Layout title="Request audit" nav="requests" csrf={c.var.session.csrfToken}>
      <form class="card row" method="get" action={`${BASE}/audit/requests`} role="search" aria-label="Filter request events">
        <Field id="a-user" label="User id">
          <input id="a-user" name="userId" type="text" value={filters.userId ?? ""} />
        </Field>
        <Field id="a-route" label="Route">
          <input id="a-route" name="route" type="text" value={filters.route ?? ""} />
        </Field>
        <FilterSelect id="a-decision" label="Decision" name="decision" options={DECISIONS} value={decision} />
        <FilterSelect id="a-status" label="Status" name="statusClass" options={CLASSES} value={statusClass} />
        <FilterSelect id="a-limit" label="Limit outcome" name="limitOutcome" options={LIMIT_OUTCOMES} value={limitOutcome} />
        <Field id="a-code" label="Error code">
          <input id="a-code" name="code" type="text" value={filters.code ?? ""} />
        </Field>
        <button type="submit">Filter</button>
        <a href={`${BASE}/audit/requests`}>Clear</a>
      </form>
      {page.data.length === 0 ? (
        <p class="card muted">No request events match (events are written asynchronously, usually within seconds).</p>
      ) : (
        <table aria-label="Request events">
          <thead>
            <tr>
              <th scope="col">Time (UTC)</th>
              <th scope="col">Request</th>
              <th scope="col">Status</th>
              <th scope="col">Decision</th>
              <th scope="col">User / key</th>
              <th scope="col">Route</th>
              <th scope="col">Latency</th>
              <th scope="col">Request id</th>
            </tr>
          </thead>
          <tbody>
            {page.data.map((e) => (
              <tr>
                <td>{when(e.timestamp)}</td>
                <td class="mono">
                  {e.method} {e.path}
                </td>
                <td>{e.status}</td>
                <td>
                  <span class={`badge ${e.decision === "allowed" ? "active" : e.decision === "error" ? "revoked" : "expired"}`}>{e.decision}</span>
                  {e.code ? <span class="mono"> {`${e.decidedBy ?? ""}:${e.code}`}</span> : null}
                </td>
                <td class="mono">{e.userId ? <a href={`${BASE}/users/${e.userId}`}>{e.userId}</a> : "—"}</td>
                <td>{e.route ?? "—"}</td>
                <td>{Math.round(e.latencyMs)} ms</td>
                <td class="mono">{e.id}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div class="pager">{page.nextCursor ? <a href={`${BASE}/audit/requests?${qs}${qs.size ? "&" : ""}cursor=${encodeURIComponent(page.nextCursor)}`}>Older →</a> : null}</div>
    </Layout>,
  );
});

auditPages.get("/audit/admin", async (c) => {
  const q = c.req.query();
  const filters = { actor: q.actor || undefined, action: q.action || undefined, targetType: q.targetType || undefined, targetId: q.targetId || undefined };
  const page = await listAdminEvents(c.var.services.db, { ...filters, limit: 50, cursor: q.cursor || undefined });
  const qs = new URLSearchParams(Object.entries(filters).filter((e): e is [string, string] => !!e[1]));
  return c.html(
    <Layout title="Admin audit" nav="admin-audit" csrf={c.var.session.csrfToken}>
      <form class="card row" method="get" action={`${BASE}/audit/admin`} role="search" aria-label="Filter admin events">
        <Field id="d-actor" label="Actor">
          <input id="d-actor" name="actor" type="text" value={filters.actor ?? ""} placeholder="admin-ui" />
        </Field>
        <Field id="d-action" label="Action">
          <input id="d-action" name="action" type="text" value={filters.action ?? ""} placeholder="key.revoke" />
        </Field>
        <Field id="d-type" label="Target type">
          <input id="d-type" name="targetType" type="text" value={filters.targetType ?? ""} placeholder="user" />
        </Field>
        <Field id="d-target" label="Target id">
          <input id="d-target" name="targetId" type="text" value={filters.targetId ?? ""} />
        </Field>
        <button type="submit">Filter</button>
        <a href={`${BASE}/audit/admin`}>Clear</a>
      </form>
      {page.data.length === 0 ? (
        <p class="card muted">No admin events match.</p>
      ) : (
        <table aria-label="Admin events">
          <thead>
            <tr>
              <th scope="col">Time (UTC)</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">Change</th>
            </tr>
          </thead>
          <tbody>
            {page.data.map((e) => (
              <tr>
                <td>{when(e.timestamp)}</td>
                <td>{e.actor}</td>
                <td class="mono">{e.action}</td>
                <td class="mono">
                  {e.targetType} {e.targetType === "user" ? <a href={`${BASE}/users/${e.targetId}`}>{e.targetId}</a> : e.targetId}
                </td>
                <td>
                  <details>
                    <summary>Before / after</summary>
                    <pre class="mono">{JSON.stringify({ before: e.before, after: e.after }, null, 2)}</pre>
                  </details>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div class="pager">{page.nextCursor ? <a href={`${BASE}/audit/admin?${qs}${qs.size ? "&" : ""}cursor=${encodeURIComponent(page.nextCursor)}`}>Older →</a> : null}</div>
    </Layout>,
  );
});
