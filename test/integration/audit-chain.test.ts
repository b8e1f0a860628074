import { env } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { dayChain, sealChain, verifyChain } from "../../worker/audit/chain";
import { auditScheduled } from "../../worker/audit/handlers";
import { runRetention } from "../../worker/audit/retention";
import { writeRequestEvents } from "../../worker/audit/store";
import { queryBudget, QueryBudgetSpent } from "../../worker/lib/query-budget";
import { admin, gw, json, seedCaller, unique } from "../helpers";
import { eventsFor, fakeEvent, waitForEvents } from "../audit-helpers";

const auth = (key: string) => ({ authorization: `Bearer ${key}` });
const DAY = 86_400_000;

describe("tamper evidence", () => {
  it("verifies the request chain and names the row edited behind the gateway's back", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("tamper");
    for (let i = 0; i < 4; i++) expect((await gw(`/echo/${m}/${i}`, { headers: auth(key) })).status).toBe(200);
    const rows = await eventsFor(m, 4);
    const chain = rows[0]!.chain as string;

    const ok = await json(await admin("GET", `/audit/verify?log=requests&chain=${chain}`));
    expect(ok).toMatchObject({ ok: true, firstBroken: null });
    expect(ok.checkedRows).toBeGreaterThanOrEqual(4);
    expect(ok.chains[0].headHash).toMatch(/^[0-9a-f]{64}$/);

    const victim = rows[2]!;
    await env.DB.prepare("UPDATE request_events SET status = 500 WHERE id = ?").bind(victim.id).run();
    try {
      const bad = await json(await admin("GET", `/audit/verify?log=requests&chain=${chain}`));
      expect(bad.ok).toBe(false);
      expect(bad.firstBroken).toMatchObject({ log: "requests", chain, seq: victim.seq, id: victim.id, reason: "content_hash_mismatch" });
      // The default range (last 7 days) finds it too.
      expect((await json(await admin("GET", "/audit/verify"))).firstBroken?.id).toBe(victim.id);
    } finally {
      await env.DB.prepare("UPDATE request_events SET status = ? WHERE id = ?").bind(victim.status, victim.id).run();
    }
    expect((await json(await admin("GET", `/audit/verify?log=requests&chain=${chain}`))).ok).toBe(true);
  });

  it("detects a deleted row and a re-hashed edit", async () => {
    const old = Date.now() - 3 * DAY; // its own chain, so the damage stays out of other tests' way
    const events = [0, 1, 2, 3].map((i) => fakeEvent({ ts: old + i, path: `/echo/${unique("del")}` }));
    await writeRequestEvents(env.DB, events, old);
    const chain = dayChain(old);
    const rows = (await env.DB.prepare("SELECT * FROM request_events WHERE id IN (?, ?, ?, ?) ORDER BY seq").bind(...events.map((e) => e.id)).all<any>()).results;
    const lastSeq = rows.at(-1).seq;
    await env.DB.prepare("UPDATE request_events SET hash = ? WHERE id = ?").bind("f".repeat(64), rows.at(-2).id).run();
    const rehashed = await json(await admin("GET", `/audit/verify?chain=${chain}`));
    expect(rehashed.firstBroken).toMatchObject({ id: rows.at(-2).id, reason: "content_hash_mismatch" });
    await env.DB.prepare("DELETE FROM request_events WHERE id = ?").bind(rows.at(-2).id).run();
    const gap = await json(await admin("GET", `/audit/verify?chain=${chain}`));
    expect(gap.firstBroken).toMatchObject({ id: rows.at(-1).id, seq: lastSeq, reason: "missing_rows" });
    await env.DB.prepare("DELETE FROM request_events WHERE chain = ?").bind(chain).run();
  });

  it("chains admin events and detects an edited admin row", async () => {
    const { user } = await seedCaller();
    const ok = await json(await admin("GET", "/audit/verify?log=admin"));
    expect(ok).toMatchObject({ ok: true, log: "admin", firstBroken: null });
    const row = await env.DB.prepare("SELECT id, seq, after FROM admin_audit WHERE target_id = ? AND action = 'user.create'").bind(user.id).first<any>();
    await env.DB.prepare("UPDATE admin_audit SET actor = 'someone-else' WHERE id = ?").bind(row.id).run();
    try {
      const bad = await json(await admin("GET", "/audit/verify?log=admin"));
      expect(bad.firstBroken).toMatchObject({ log: "admin", seq: row.seq, id: row.id, reason: "content_hash_mismatch" });
    } finally {
      await env.DB.prepare("UPDATE admin_audit SET actor = 'admin-token' WHERE id = ?").bind(row.id).run();
    }
    expect((await json(await admin("GET", "/audit/verify?log=admin"))).ok).toBe(true);
  });
});

describe("admin rows from before the chain (migration 0002)", () => {
  it("are reported by verify as unchained — not broken, not silently skipped, never adopted", async () => {
    const before = await json(await admin("GET", "/audit/verify?log=admin"));
    expect(before.ok).toBe(true);
    // What 0002 leaves of a row written before it: the new seq / prev_hash / hash columns are NULL.
    const old = Date.UTC(2025, 0, 15, 12, 0, 0);
    const id = `aev_pre0002${unique("x").replaceAll("-", "")}`;
    await env.DB.prepare(
      `INSERT INTO admin_audit (id, created_at, actor, action, target_type, target_id, request_id, "before", "after") VALUES (?, ?, 'admin-token', 'user.create', 'user', 'usr_legacy', 'req_legacy', NULL, '{"name":"legacy"}')`,
    )
      .bind(id, old)
      .run();
    try {
      const report = await json(await admin("GET", "/audit/verify?log=admin"));
      expect(report).toMatchObject({ ok: true, firstBroken: null, unchainedRows: before.unchainedRows + 1 });
      expect(report.chains[0]).toMatchObject({ status: "ok", unchained: before.chains[0].unchained + 1 });
      expect(Date.parse(report.chains[0].unchainedRange.from)).toBeLessThanOrEqual(old);
      expect(Date.parse(report.chains[0].unchainedRange.to)).toBeGreaterThanOrEqual(old);
      // The chained rows are still all verified.
      expect(report.checkedRows).toBeGreaterThanOrEqual(before.checkedRows);

      // A later mutation seals the chain; the old row stays outside it (adopting seq-less rows
      // would also seal one slipped into D1 behind the gateway's back).
      await seedCaller();
      const row = await env.DB.prepare("SELECT seq, prev_hash, hash FROM admin_audit WHERE id = ?").bind(id).first();
      expect(row).toEqual({ seq: null, prev_hash: null, hash: null });
      const after = await json(await admin("GET", "/audit/verify?log=admin"));
      expect(after).toMatchObject({ ok: true, unchainedRows: before.unchainedRows + 1 });
      // Queries still list it, with no chain position.
      const listed = await json(await admin("GET", "/audit/admin?targetId=usr_legacy"));
      expect(listed.data).toEqual([expect.objectContaining({ id, seq: null, hash: null, action: "user.create" })]);
      // The request log has no such rows.
      const requests = await json(await admin("GET", "/audit/verify?log=requests"));
      expect(requests.unchainedRows).toBe(0);
      expect(requests.chains.every((c: any) => c.unchained === 0 && c.unchainedRange === null)).toBe(true);
    } finally {
      await env.DB.prepare("DELETE FROM admin_audit WHERE id = ?").bind(id).run();
    }
    expect((await json(await admin("GET", "/audit/verify?log=admin"))).unchainedRows).toBe(before.unchainedRows);
  });
});

describe("verify while a sealer runs (the unsealed tail across its 500-row pages)", () => {
  /** env.DB, except that a sealer runs (and finishes) right after verify's first page read. */
  const sealerAfterFirstPage = (chain: string) => {
    let done = false;
    return {
      prepare(sql: string) {
        const stmt = env.DB.prepare(sql);
        if (!sql.includes(`"seq" <= ?3`)) return stmt; // only verify's page query
        return {
          bind: (...args: unknown[]) => ({
            all: async () => {
              const out = await stmt.bind(...args).all();
              if (!done && (done = true)) await sealChain(env.DB, "requests", chain);
              return out;
            },
          }),
        };
      },
    } as unknown as D1Database;
  };
  const unseal = (chain: string, from: number, to = 1e9) => env.DB.prepare("UPDATE request_events SET hash = NULL, prev_hash = NULL WHERE chain = ? AND seq BETWEEN ? AND ?").bind(chain, from, to).run();

  it("reads an intact chain as intact when the tail gets sealed between two pages, and still flags a sealed row after an unsealed one", async () => {
    // Its own far-future day chain: outside every default range, removed at the end.
    const day = Date.UTC(2091, 0, 1 + Math.floor(Math.random() * 300));
    const chain = dayChain(day);
    await writeRequestEvents(env.DB, Array.from({ length: 510 }, (_, i) => fakeEvent({ ts: day + i })), day);
    try {
      const sealed = await verifyChain(env.DB, "requests", chain);
      expect(sealed).toMatchObject({ broken: null, report: { status: "ok", rows: 510, unsealed: 0 } });
      // Rows 496..510 as they are between their write and its sealer: the tail crosses verify's first page.
      await unseal(chain, 496);
      expect(await verifyChain(env.DB, "requests", chain)).toMatchObject({ broken: null, report: { status: "ok", rows: 495, unsealed: 15, lastSeq: 510 } });
      // The sealer finishes after verify read page 1 (496..500 unsealed) and before page 2 (501.., now sealed).
      const racing = await verifyChain(sealerAfterFirstPage(chain), "requests", chain);
      expect(racing).toMatchObject({ broken: null, report: { status: "ok", rows: 510, unsealed: 0, lastSeq: 510, headHash: sealed.report.headHash } });

      // Real damage stays a break. Across pages: 496..505 unsealed, 506.. sealed, no sealer running.
      await unseal(chain, 496, 505);
      const across = await verifyChain(env.DB, "requests", chain);
      expect(across).toMatchObject({ report: { status: "broken" }, broken: { seq: 506, reason: "sealed_after_unsealed" } });
      // Within one page: one row's hash removed in the middle, even with a sealer running alongside.
      await unseal(chain, 496);
      await sealChain(env.DB, "requests", chain); // (a sealer continues from the last sealed row)
      expect((await verifyChain(env.DB, "requests", chain)).broken).toBeNull();
      await unseal(chain, 10, 10);
      expect((await verifyChain(sealerAfterFirstPage(chain), "requests", chain)).broken).toMatchObject({ seq: 11, reason: "sealed_after_unsealed" });
    } finally {
      await env.DB.prepare("DELETE FROM request_events WHERE chain = ?").bind(chain).run();
    }
  });
});

describe("usage analytics", () => {
  it("matches the events: counts by status class and decision, latency percentiles, per minute/hour/day", async () => {
    const { key, user } = await seedCaller({ permissions: ["echo:read"], group: unique("grp") });
    const m = unique("usage");
    for (let i = 0; i < 3; i++) await gw(`/echo/${m}/${i}`, { headers: auth(key) });
    await gw(`/echo/${m}/__status/503`, { headers: auth(key) });
    await gw(`/echo-write/${m}/a`, { method: "POST", headers: auth(key) });
    await gw(`/echo-write/${m}/b`, { method: "POST", headers: auth(key) });
    const events = await eventsFor(m, 6);

    const expected = { requests: 6, status: { "1xx": 0, "2xx": 3, "3xx": 0, "4xx": 2, "5xx": 1 }, decisions: { allowed: 4, "authorize:FORBIDDEN": 2 } };
    // The same figures, derived from the stored events themselves.
    const derived = { requests: events.length, status: { "1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0 } as Record<string, number>, decisions: {} as Record<string, number> };
    for (const e of events) {
      derived.status[`${Math.floor(e.status / 100)}xx`]! += 1;
      const d = e.decision === "allowed" ? "allowed" : `${e.decided_by}:${e.code}`;
      derived.decisions[d] = (derived.decisions[d] ?? 0) + 1;
    }
    expect(derived).toEqual(expected);
    const bytes = { in: events.reduce((n, e) => n + e.bytes_in, 0), out: events.reduce((n, e) => n + e.bytes_out, 0) };
    expect(bytes.out).toBeGreaterThan(0);
    const from = new Date(Math.min(...events.map((e) => e.ts)) - DAY).toISOString();
    for (const granularity of ["minute", "hour", "day"]) {
      const usage = await json(await admin("GET", `/usage?by=user&value=${user.id}&granularity=${granularity}&from=${from}`));
      const sum = { requests: 0, status: { "1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0 } as Record<string, number>, decisions: {} as Record<string, number> };
      const sumBytes = { in: 0, out: 0 };
      for (const b of usage.data) {
        expect(b.value).toBe(user.id);
        sum.requests += b.requests;
        sumBytes.in += b.bytesIn;
        sumBytes.out += b.bytesOut;
        for (const [k, v] of Object.entries(b.status)) sum.status[k]! += v as number;
        for (const [k, v] of Object.entries(b.decisions)) sum.decisions[k] = (sum.decisions[k] ?? 0) + (v as number);
        expect(b.latencyMs.p50).toBeGreaterThan(0);
        expect(b.latencyMs.p99).toBeGreaterThanOrEqual(b.latencyMs.p50);
      }
      expect(sum, granularity).toEqual(expected);
      expect(sumBytes, granularity).toEqual(bytes);
    }
    const byGroup = await json(await admin("GET", `/usage?by=group&value=${user.group}&granularity=day&from=${from}`));
    expect(byGroup.data.reduce((n: number, b: any) => n + b.requests, 0)).toBe(6);
    // Per route: other tests share these routes, so only check that these events are all counted.
    for (const route of ["echo-read", "echo-write"]) {
      const byRoute = await json(await admin("GET", `/usage?by=route&value=${route}&granularity=day&from=${from}`));
      expect(byRoute.data.reduce((n: number, b: any) => n + b.requests, 0)).toBeGreaterThanOrEqual(events.filter((e) => e.route === route).length);
    }
    const maxLatency = Math.max(...events.map((e) => e.latency_ms));
    const day = (await json(await admin("GET", `/usage?by=user&value=${user.id}&granularity=day&from=${from}`))).data;
    // p100 bound: the histogram bucket's upper bound is never below the slowest request.
    expect(day.at(-1).latencyMs.p99).toBeGreaterThanOrEqual(Math.min(maxLatency, 10_000));
  });
});

describe("retention", () => {
  it("deletes only day chains older than the retention, behind a checkpoint, and what remains verifies", async () => {
    const now = Date.now();
    const tag = unique("ret");
    const write = async (daysAgo: number, n: number) => {
      const at = now - daysAgo * DAY;
      const evs = Array.from({ length: n }, (_, i) => fakeEvent({ ts: at + i, path: `/echo/${tag}/${daysAgo}/${i}`, userId: `usr_${tag.replaceAll("-", "")}` }));
      await writeRequestEvents(env.DB, evs, at);
      return dayChain(at);
    };
    const expired = await write(45, 3);
    const partly = await write(40, 5);
    const kept = await write(10, 2);
    const today = dayChain(now);
    const todayBefore = (await env.DB.prepare("SELECT COUNT(*) AS n FROM request_events WHERE chain = ?").bind(today).first<{ n: number }>())!.n;

    // A bounded run first: two rows of the oldest chain go, behind a checkpoint mid-chain.
    await runRetention(env.DB, { retentionDays: 30, minuteRollupDays: 7, now, maxChunks: 1, chunkSize: 2 });
    const mid = await json(await admin("GET", `/audit/verify?chain=${expired}`));
    expect(mid).toMatchObject({ ok: true, checkedRows: 1 });
    expect(mid.chains[0]).toMatchObject({ status: "ok", retiredThroughSeq: 2, firstSeq: 3 });

    await auditScheduled({ scheduledTime: now }, env as never);
    const count = async (chain: string) => (await env.DB.prepare("SELECT COUNT(*) AS n FROM request_events WHERE chain = ?").bind(chain).first<{ n: number }>())!.n;
    expect(await count(expired)).toBe(0);
    expect(await count(partly)).toBe(0);
    expect(await count(kept)).toBe(2);
    expect(await count(today)).toBeGreaterThanOrEqual(todayBefore);
    const cp = await env.DB.prepare("SELECT * FROM audit_checkpoints WHERE chain = ?").bind(`requests:${partly}`).first<any>();
    expect(cp).toMatchObject({ through_seq: 5, deleted_rows: 5 });
    expect(cp.through_hash).toMatch(/^[0-9a-f]{64}$/);

    for (const chain of [expired, partly]) {
      const v = await json(await admin("GET", `/audit/verify?chain=${chain}`));
      expect(v).toMatchObject({ ok: true });
      expect(v.chains[0].status).toBe("retired");
    }
    expect((await json(await admin("GET", `/audit/verify?chain=${kept}`))).ok).toBe(true);
    expect((await json(await admin("GET", `/audit/verify?from=${new Date(now - 60 * DAY).toISOString()}`))).ok).toBe(true);

    // Usage survives: hour/day rollups stay, minute rollups older than 7 days are gone.
    const uid = `usr_${tag.replaceAll("-", "")}`;
    const rollups = (await env.DB.prepare("SELECT granularity, SUM(requests) AS n FROM usage_rollups WHERE dim = 'user' AND value = ? GROUP BY granularity ORDER BY granularity").bind(uid).all<any>()).results;
    expect(rollups).toEqual([
      { granularity: "day", n: 10 },
      { granularity: "hour", n: 10 },
    ]);
  });
});

describe("a D1 query budget per scheduled run", () => {
  it("retention stops before the budget is spent, leaves a chain that verifies, and the next run goes on", async () => {
    const now = Date.now();
    const tag = unique("budget");
    const at = now - 50 * DAY;
    await writeRequestEvents(env.DB, Array.from({ length: 12 }, (_, i) => fakeEvent({ ts: at + i, path: `/echo/${tag}/${i}` })), at);
    const chain = dayChain(at);
    const count = async () => (await env.DB.prepare("SELECT COUNT(*) AS n FROM request_events WHERE chain = ?").bind(chain).first<{ n: number }>())!.n;
    const before = await count();
    // Each chunk of 2 rows takes a read and a batch of two statements: 10 queries do not finish 12+ rows.
    const budget = queryBudget(env.DB, 10);
    await expect(runRetention(budget.db, { retentionDays: 30, minuteRollupDays: 7, now, chunkSize: 2 })).rejects.toBeInstanceOf(QueryBudgetSpent);
    expect(budget.used()).toBeLessThanOrEqual(10);
    const left = await count();
    expect(left).toBeLessThan(before);
    expect(left).toBeGreaterThan(0);
    expect(await json(await admin("GET", `/audit/verify?chain=${chain}`))).toMatchObject({ ok: true });
    await runRetention(env.DB, { retentionDays: 30, minuteRollupDays: 7, now, chunkSize: 2 });
    expect(await count()).toBe(0);
  });

  it("a run that spends its budget ends cleanly and says so; one with room finishes", async () => {
    // A backlog: an expired day chain to seal and delete (with sealing today's, well over 10 queries).
    const at = Date.now() - 55 * DAY;
    await writeRequestEvents(env.DB, Array.from({ length: 5 }, (_, i) => fakeEvent({ ts: at + i, path: `/echo/${unique("backlog")}` })), at);
    const log = vi.spyOn(console, "log");
    try {
      await auditScheduled({ scheduledTime: Date.now() }, { ...env, CRON_D1_QUERY_BUDGET: "10" } as never);
      const lineOf = () => log.mock.calls.map((c) => String(c[0])).filter((l) => l.includes('"audit maintenance"')).map((l) => JSON.parse(l)).at(-1);
      expect(lineOf()).toMatchObject({ budgetSpent: true, queries: expect.any(Number) });
      expect(lineOf().queries).toBeLessThanOrEqual(10);
      await auditScheduled({ scheduledTime: Date.now() }, env as never);
      expect(lineOf()).toMatchObject({ budgetSpent: false });
      expect((await env.DB.prepare("SELECT COUNT(*) AS n FROM request_events WHERE chain = ?").bind(dayChain(at)).first<{ n: number }>())!.n).toBe(0);
    } finally {
      log.mockRestore();
    }
  });
});

describe("key hygiene", () => {
  it("maintains last_used_at from the trail, lists unused keys and can revoke them on schedule", async () => {
    const { key, keyId, user } = await seedCaller({ permissions: ["echo:read"] });
    const unused = await json(await admin("POST", `/users/${user.id}/keys`, {}));
    const m = unique("used");
    const res = await gw(`/echo/${m}`, { headers: auth(key) });
    expect(res.status).toBe(200);
    const [event] = await eventsFor(m, 1);
    await waitForEvents("id = ?", [event!.id], 1);
    const used = await json(await admin("GET", `/keys/${keyId}`));
    expect(used.lastUsedAt).toBe(new Date(event!.ts).toISOString());
    expect((await json(await admin("GET", `/keys/${unused.id}`))).lastUsedAt).toBeNull();

    // Age both keys: the used one was last used 40 days ago, the other created then and never used.
    const past = Date.now() - 40 * DAY;
    await env.DB.prepare("UPDATE api_keys SET created_at = ?, last_used_at = CASE WHEN id = ? THEN ? ELSE NULL END WHERE user_id = ?").bind(past, keyId, past + 1000, user.id).run();
    const recent = await seedCaller({ permissions: ["echo:read"] });
    const list = await json(await admin("GET", `/keys?unusedForDays=30&userId=${user.id}`));
    expect(list.data.map((k: any) => k.id).sort()).toEqual([keyId, unused.id].sort());
    expect((await json(await admin("GET", `/keys?unusedForDays=30&userId=${recent.user.id}`))).data).toEqual([]);
    expect((await json(await admin("GET", `/keys?unusedForDays=50&userId=${user.id}`))).data).toEqual([]);

    await auditScheduled({ scheduledTime: Date.now() }, { ...env, AUTO_REVOKE_UNUSED_KEYS_DAYS: "30" } as never);
    expect((await json(await admin("GET", `/keys/${unused.id}`))).status).toBe("revoked");
    expect((await json(await admin("GET", `/keys/${keyId}`))).status).toBe("revoked");
    expect((await json(await admin("GET", `/keys/${recent.keyId}`))).status).toBe("active");
    const events = await json(await admin("GET", `/audit/admin?targetId=${unused.id}&action=key.revoke`));
    expect(events.data[0]).toMatchObject({ actor: "system:auto-revoke", targetType: "key" });
    expect((await json(await admin("GET", "/audit/verify?log=admin"))).ok).toBe(true);
  });
});
