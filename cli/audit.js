// @ts-check
import { createWriteStream } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { all, ok, userIdOf } from "./client.js";
import { CliError, EXIT, usageError } from "./errors.js";
import { color, printJson, table, when } from "./output.js";

/** `15m`, `24h`, `7d` ago, or an ISO instant. @param {string | undefined} text */
function since(text) {
  if (!text) return undefined;
  const m = /^(\d+)\s*([smhd])$/.exec(text.trim());
  if (m) return new Date(Date.now() - Number(m[1]) * { s: 1e3, m: 6e4, h: 36e5, d: 864e5 }[/** @type {"s"} */ (m[2])]).toISOString();
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) throw usageError(`Not a time or duration: "${text}".`);
  return d.toISOString();
}

/**
 * `audit tail -f` looks again this far before the newest event it showed (README "CLI"): an event
 * stored up to this long after a newer one is still printed; later ones show in `audit requests`.
 */
const TAIL_LOOKBACK_S = 30;

const SPARKS = "▁▂▃▄▅▆▇█";
/** A terminal sparkline: one block per value, scaled to the largest. @param {number[]} values */
export function sparkline(values) {
  const max = Math.max(0, ...values);
  return values.map((v) => (max === 0 ? SPARKS[0] : SPARKS[Math.min(7, Math.floor((v / max) * 7.999))])).join("");
}

/** @param {any} e */
const decisionText = (e) => (e.decision === "allowed" ? color.green("allowed") : `${e.decision === "error" ? color.red(e.decision) : color.yellow(e.decision)} ${e.decidedBy ?? ""}:${e.code ?? ""}`);
/** @param {number} s */
const statusText = (s) => (s >= 500 ? color.red(String(s)) : s >= 400 ? color.yellow(String(s)) : color.green(String(s)));
/** @param {any[]} rows */
const requestTable = (rows) =>
  table(
    ["TIME", "METHOD", "PATH", "STATUS", "DECISION", "USER", "MS", "REQUEST ID"],
    rows.map((e) => [when(e.timestamp), e.method, e.path, statusText(e.status), decisionText(e), e.userId, Math.round(e.latencyMs), e.id]),
  );

/** @param {import("commander").Command} program @param {import("./client.js").CommandHelpers} h */
export function registerAudit(program, { apiFor, globals }) {
  const audit = program.command("audit").description("request and admin audit trails: query, follow, export, verify");
  /** @param {import("commander").Command} c */
  const requestFilters = (c) =>
    c
      .option("--user <user>", "proxy user (id or name; a deleted user by its id)")
      .option("--key <keyId>", "key id")
      .option("--route <name>", "route name")
      .option("--group <group>", "proxy user group")
      .option("--decision <d>", "allowed, refused or error")
      .option("--status <class>", "status class: 2xx, 4xx, 5xx…")
      .option("--code <code>", "problem code, e.g. KEY_INVALID")
      .option("--limit-outcome <o>", "a limit's outcome: refused, dry-run-refused, fail-open or fail-closed")
      .option("--since <when>", "from this instant or this long ago (15m, 24h, 7d)")
      .option("--until <when>", "until this instant");
  /** @param {any} api @param {any} o */
  const requestQuery = async (api, o) => ({
    // A deleted user's id still finds its events.
    userId: o.user ? await userIdOf(api, o.user) : undefined,
    keyId: o.key,
    route: o.route,
    group: o.group,
    decision: o.decision,
    statusClass: o.status,
    code: o.code,
    limitOutcome: o.limitOutcome,
    from: since(o.since),
    to: since(o.until),
  });

  requestFilters(audit.command("requests").description("request audit events, newest first"))
    .option("--limit <n>", "at most this many", "50")
    .action(async (o, cmd) => {
      const api = apiFor(cmd);
      const page = await ok(api.GET("/audit/requests", { params: { query: { ...(await requestQuery(api, o)), limit: Number(o.limit) } } }));
      if (globals(cmd).json) return printJson(page.data);
      console.log(page.data.length ? requestTable(page.data) : color.dim("No request events match."));
    });

  requestFilters(audit.command("tail").description("print new request events as they arrive (Ctrl-C to stop)"))
    .option("-f, --follow", "keep following (default: print the latest and exit)")
    .option("--interval <seconds>", "poll interval", "2")
    .option("--lookback <seconds>", "how far before the newest event shown each poll looks again, for events stored late", String(TAIL_LOOKBACK_S))
    .action(async (o, cmd) => {
      const api = apiFor(cmd);
      const g = globals(cmd);
      const q = await requestQuery(api, o);
      const lookbackMs = Number(o.lookback) * 1000;
      if (!(lookbackMs >= 0)) throw usageError(`--lookback must be a number of seconds, not "${o.lookback}".`);
      // Events are stored asynchronously and carry their request's time, not their storage time: a
      // batch from another isolate, a streamed response's event or a queue retry lands after newer
      // ones were shown. So each poll looks back from the newest event shown, and `seen` (id → time)
      // drops what was already printed; ids older than the window cannot come back, so they leave
      // `seen` and it stays bounded by the window.
      /** @type {Map<string, number>} */
      const seen = new Map();
      let from = q.from ?? new Date(Date.now() - 60_000).toISOString();
      let newest = 0;
      let header = !g.json;
      for (;;) {
        // Every page (newest first), not only the newest 500: a busy interval must not drop events.
        const rows = await all((cursor) => ok(api.GET("/audit/requests", { params: { query: { ...q, from, limit: 500, cursor } } })));
        const fresh = rows.filter((e) => !seen.has(e.id)).reverse();
        for (const e of fresh) {
          const t = Date.parse(e.timestamp);
          seen.set(e.id, t);
          newest = Math.max(newest, t);
        }
        if (fresh.length) {
          if (g.json) for (const e of fresh) process.stdout.write(`${JSON.stringify(e)}\n`);
          else {
            const text = requestTable(fresh).split("\n");
            console.log((header ? text : text.slice(1)).join("\n"));
            header = false;
          }
        }
        if (!o.follow) return;
        const windowStart = newest - lookbackMs;
        if (windowStart > Date.parse(from)) {
          from = new Date(windowStart).toISOString();
          for (const [id, t] of seen) if (t < windowStart) seen.delete(id);
        }
        await new Promise((r) => setTimeout(r, Number(o.interval) * 1000));
      }
    });

  audit
    .command("admin")
    .description("admin audit events (who changed what), newest first")
    .option("--actor <actor>", "admin-token, admin-ui, …")
    .option("--action <action>", "e.g. key.revoke")
    .option("--target-type <type>", "user, role, key, …")
    .option("--target <id>", "id of the changed object")
    .option("--since <when>", "from this instant or this long ago")
    .option("--limit <n>", "at most this many", "50")
    .action(async (o, cmd) => {
      const api = apiFor(cmd);
      const page = await ok(
        api.GET("/audit/admin", { params: { query: { actor: o.actor, action: o.action, targetType: o.targetType, targetId: o.target, from: since(o.since), limit: Number(o.limit) } } }),
      );
      if (globals(cmd).json) return printJson(page.data);
      console.log(page.data.length ? table(["TIME", "ACTOR", "ACTION", "TARGET", "REQUEST ID"], page.data.map((e) => [when(e.timestamp), e.actor, e.action, `${e.targetType} ${e.targetId}`, e.requestId])) : color.dim("No admin events match."));
    });

  audit
    .command("export")
    .description("export events as NDJSON (oldest first) to stdout or a file")
    .option("--log <log>", "requests or admin", "requests")
    .option("--since <when>", "from this instant or this long ago")
    .option("--until <when>", "until this instant")
    .option("-o, --output <file>", "write to this file instead of stdout")
    .action(async (o, cmd) => {
      const api = apiFor(cmd);
      const { response } = await api.GET("/audit/export", { params: { query: { log: o.log, from: since(o.since), to: since(o.until) } }, parseAs: "stream" });
      if (!response.ok) await ok(Promise.resolve({ response, error: await response.json().catch(() => ({})) }));
      if (!response.body) throw new CliError("The export came back empty.", EXIT.SERVER);
      await pipeline(Readable.fromWeb(/** @type {any} */ (response.body)), o.output ? createWriteStream(o.output) : process.stdout);
    });

  audit
    .command("verify")
    .description("verify the audit hash chains; exits 7 if a link is broken")
    .option("--log <log>", "requests or admin", "requests")
    .option("--since <when>", "request chains from this instant (default: last 7 days)")
    .option("--chain <day>", "one request chain (YYYY-MM-DD)")
    .action(async (o, cmd) => {
      const api = apiFor(cmd);
      const report = await ok(api.GET("/audit/verify", { params: { query: { log: o.log, from: since(o.since), chain: o.chain } } }));
      if (globals(cmd).json) printJson(report);
      else {
        console.log(table(["CHAIN", "STATUS", "ROWS", "SEQ", "UNSEALED"], report.chains.map((c) => [c.chain ?? o.log, c.status === "ok" ? color.green(c.status) : c.status === "broken" ? color.red(c.status) : c.status, c.rows, `${c.firstSeq ?? "—"}..${c.lastSeq ?? "—"}`, c.unsealed])));
        if (report.unchainedRows > 0) {
          const range = report.chains.find((c) => c.unchainedRange)?.unchainedRange;
          console.log(`${report.unchainedRows} admin rows predate the chain (migration 0002) and are not verified${range ? ` (${range.from} … ${range.to})` : ""}.`);
        }
        if (report.firstBroken) console.log(color.red(`First broken link: ${report.firstBroken.chain ?? o.log} seq ${report.firstBroken.seq} (${report.firstBroken.id}): ${report.firstBroken.reason}`));
        else console.log(color.green(`Verified ${report.checkedRows} rows${report.truncated ? " (truncated: raise maxRows or narrow the range)" : ""}.`));
      }
      // Thrown, not process.exitCode: run() returns the exit code, and bin/ sets it from that.
      if (!report.ok) {
        const b = report.firstBroken;
        throw new CliError(`Broken hash chain${b ? `: ${b.chain ?? o.log} seq ${b.seq} (${b.reason})` : ""}.`, EXIT.VERIFY_FAILED);
      }
    });

  program
    .command("usage")
    .description("requests per user (or group/route) with a sparkline over time")
    .option("--by <dim>", "user, group, route or all", "user")
    .option("--value <v>", "one user id / group / route")
    .option("--granularity <g>", "minute, hour or day", "hour")
    .option("--since <when>", "from this long ago (default: 24h for hours)")
    .action(async (o, cmd) => {
      const api = apiFor(cmd);
      const usage = await ok(api.GET("/usage", { params: { query: { by: o.by, value: o.value, granularity: o.granularity, from: since(o.since) } } }));
      if (globals(cmd).json) return printJson(usage);
      // Every bucket of the range, so quiet periods show as ▁ rather than vanishing.
      const size = { minute: 60_000, hour: 3_600_000, day: 86_400_000 }[usage.granularity];
      /** @type {number[]} */
      const buckets = [];
      for (let t = Math.floor(Date.parse(usage.from) / size) * size; t < Date.parse(usage.to); t += size) buckets.push(t);
      /** @type {Map<string, typeof usage.data>} */
      const byValue = new Map();
      for (const d of usage.data) byValue.set(d.value, [...(byValue.get(d.value) ?? []), d]);
      // Show names next to user ids.
      const names = new Map();
      if (usage.by === "user" && byValue.size) for (const u of await all((cursor) => ok(api.GET("/users", { params: { query: { limit: 100, cursor } } })))) names.set(u.id, u.name);
      const rows = [...byValue.entries()]
        .map(([value, ds]) => {
          const sum = (/** @type {(d: any) => number} */ f) => ds.reduce((n, d) => n + f(d), 0);
          const per = buckets.map((b) => ds.filter((d) => Date.parse(d.bucket) === b).reduce((n, d) => n + d.requests, 0));
          const p95 = Math.max(0, ...ds.map((d) => d.latencyMs.p95 ?? 0));
          return { value, requests: sum((d) => d.requests), ok: sum((d) => d.status["2xx"]), c4: sum((d) => d.status["4xx"]), c5: sum((d) => d.status["5xx"]), p95, spark: sparkline(per) };
        })
        .sort((a, b) => b.requests - a.requests);
      console.log(`${usage.by} usage, ${when(usage.from)} → ${when(usage.to)}, per ${usage.granularity}`);
      console.log(rows.length ? table([usage.by.toUpperCase(), ...(usage.by === "user" ? ["NAME"] : []), "REQUESTS", "2XX", "4XX", "5XX", "P95 MS", "OVER TIME"], rows.map((r) => [r.value, ...(usage.by === "user" ? [names.get(r.value) ?? null] : []), r.requests, r.ok, r.c4, r.c5, r.p95 || null, color.cyan(r.spark)])) : color.dim("No requests in this range."));
    });
}
