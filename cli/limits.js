// @ts-check
import { ok, resolveRole, resolveUser } from "./client.js";
import { CliError, EXIT, usageError } from "./errors.js";
import { color, printJson, table, when } from "./output.js";

/** `name=123` pairs → { name: { limit: 123 } }. @param {string[]} pairs */
function parsePairs(pairs) {
  /** @type {Record<string, { limit: number }>} */
  const out = {};
  for (const p of pairs) {
    const m = /^([a-z0-9][a-z0-9_-]{0,63})=(\d+)$/.exec(p);
    if (!m) throw usageError(`Expected <limit-name>=<number>, got "${p}".`);
    out[/** @type {string} */ (m[1])] = { limit: Number(m[2]) };
  }
  return out;
}

/** @param {import("commander").Command} program @param {import("./client.js").CommandHelpers} h */
export function registerLimits(program, { apiFor, globals }) {
  const limits = program.command("limits").description("rate limits and quotas: overrides per user or role, current usage, resets");
  limits
    .command("list")
    .description("the limits gateway.config.ts declares: what overrides can name, with their defaults")
    .action(async (_o, cmd) => {
      const api = apiFor(cmd);
      const { data } = await ok(api.GET("/limits"));
      if (globals(cmd).json) return printJson(data);
      if (!data.length) return console.log(color.dim("No rate limits or quotas are configured."));
      console.log(
        table(
          ["LIMIT", "KIND", "DEFAULT", "COUNTED PER", "ROUTES", "FAILS"],
          data.map((d) => [d.name, d.kind === "rate" ? `rate (${d.algorithm})` : "quota", `${d.limit}/${d.window ?? d.period ?? "?"}`, d.by.join("+"), d.routes.join(", "), `${d.failMode}${d.dryRun ? ", dry-run" : ""}`]),
        ),
      );
    });
  limits
    .command("show <user>")
    .description("effective limits of a proxy user, with current usage and remaining")
    .action(async (ref, _o, cmd) => {
      const api = apiFor(cmd);
      const user = await resolveUser(api, ref);
      const status = await ok(api.GET("/users/{id}/limits/status", { params: { path: { id: user.id } } }));
      if (globals(cmd).json) return printJson(status);
      if (!status.limits.length) return console.log(color.dim("No limits counted by user, group or route are configured."));
      console.log(
        table(
          ["LIMIT", "KIND", "LIMIT/WINDOW", "SOURCE", "USED", "REMAINING", "RESETS", "BACKEND"],
          status.limits.map((l) => [
            // A shared counter (the user's group's, or the route's) is spent by others too.
            `${l.name}${l.route ? ` (${l.route})` : ""}${l.shared ? color.dim(" shared") : ""}`,
            l.kind,
            `${l.limit}/${l.window ?? l.period ?? "?"}`,
            l.source,
            l.error ? color.red(l.error) : l.used,
            l.remaining === 0 ? color.red("0") : l.remaining,
            when(l.resetAt),
            `${l.backend}${l.dryRun ? " (dry-run)" : ""}`,
          ]),
        ),
      );
    });
  limits
    .command("set <target> <name=limit...>")
    .description("override limits for a proxy user (or a role with --role); other overrides are kept")
    .option("--role", "the target is a role")
    .option("--replace", "replace all overrides instead of merging")
    .action(async (ref, pairs, o, cmd) => {
      const api = apiFor(cmd);
      const wanted = parsePairs(pairs);
      const result = o.role
        ? await (async () => {
            const role = await resolveRole(api, ref);
            const cur = o.replace ? { limits: {} } : await ok(api.GET("/roles/{id}/limits", { params: { path: { id: role.id } } }));
            const merged = { ...Object.fromEntries(Object.entries(cur.limits).map(([k, v]) => [k, { limit: v.limit }])), ...wanted };
            return ok(api.PUT("/roles/{id}/limits", { params: { path: { id: role.id } }, body: { limits: merged } }));
          })()
        : await (async () => {
            const user = await resolveUser(api, ref);
            const cur = o.replace ? { limits: {} } : await ok(api.GET("/users/{id}/limits", { params: { path: { id: user.id } } }));
            const merged = { ...Object.fromEntries(Object.entries(cur.limits).map(([k, v]) => [k, { limit: v.limit }])), ...wanted };
            return ok(api.PUT("/users/{id}/limits", { params: { path: { id: user.id } }, body: { limits: merged } }));
          })();
      if (globals(cmd).json) return printJson(result);
      console.log(table(["LIMIT", "OVERRIDE", "UPDATED"], Object.entries(result.limits).map(([k, v]) => [k, v.limit, when(v.updatedAt)])));
    });
  limits
    .command("unset <target> [names...]")
    .description("remove overrides (all of them when no names are given)")
    .option("--role", "the target is a role")
    .action(async (ref, names, o, cmd) => {
      const api = apiFor(cmd);
      const target = o.role ? await resolveRole(api, ref) : await resolveUser(api, ref);
      const path = /** @type {const} */ ({ params: { path: { id: target.id } } });
      if (!names.length) {
        await ok(o.role ? api.DELETE("/roles/{id}/limits", path) : api.DELETE("/users/{id}/limits", path));
      } else {
        const cur = await ok(o.role ? api.GET("/roles/{id}/limits", path) : api.GET("/users/{id}/limits", path));
        const kept = Object.fromEntries(Object.entries(cur.limits).filter(([k]) => !names.includes(k)).map(([k, v]) => [k, { limit: v.limit }]));
        await ok(o.role ? api.PUT("/roles/{id}/limits", { ...path, body: { limits: kept } }) : api.PUT("/users/{id}/limits", { ...path, body: { limits: kept } }));
      }
      if (globals(cmd).json) return printJson({ id: target.id, removed: names.length ? names : "all" });
      console.log(`Removed ${names.length ? names.join(", ") : "all overrides"} of ${target.name}`);
    });
  limits
    .command("reset <user> [names...]")
    .description("reset a proxy user's usage (default: all its quotas); prints what happened to each limit")
    .action(async (ref, names, _o, cmd) => {
      const api = apiFor(cmd);
      const user = await resolveUser(api, ref);
      // The gateway resets each limit on its own: 200 all, 207 some (others' backends did not
      // answer), 503 none (a CliError from ok(), exit 6).
      const call = api.POST("/users/{id}/limits/reset", { params: { path: { id: user.id } }, body: names.length ? { names } : {} });
      const report = await ok(call);
      if (!globals(cmd).json && !report.results.length) return console.log(color.dim(`Nothing to reset: ${user.name} has no ${names.length ? "such" : "quota"} counters.`));
      printReset(report, (await call).response, Boolean(globals(cmd).json));
    });
  limits
    .command("shared <name>")
    .description("usage of a limit counted by group and/or route only (a group's quota, say)")
    .option("--group <group>", "the group, for a limit counted per group")
    .action(async (name, o, cmd) => {
      const status = await ok(apiFor(cmd).GET("/limits/{name}/status", { params: { path: { name }, query: { group: o.group } } }));
      if (globals(cmd).json) return printJson(status);
      console.log(
        table(
          ["LIMIT", "ROUTE", "LIMIT/WINDOW", "USED", "REMAINING", "RESETS", "BACKEND"],
          status.limits.map((l) => [l.name, l.route, `${l.limit}/${l.window ?? l.period ?? "?"}`, l.error ? color.red(l.error) : l.used, l.remaining === 0 ? color.red("0") : l.remaining, when(l.resetAt), l.backend]),
        ),
      );
    });
  limits
    .command("reset-shared <name>")
    .description("reset a limit counted by group and/or route only, for everyone it counts (a group's quota, say)")
    .option("--group <group>", "the group, for a limit counted per group")
    .action(async (name, o, cmd) => {
      const call = apiFor(cmd).POST("/limits/{name}/reset", { params: { path: { name }, query: { group: o.group } } });
      const report = await ok(call);
      printReset(report, (await call).response, Boolean(globals(cmd).json));
    });
}

/**
 * A reset's report, one line per counter; exits 8 (done in part) when some were not reset. The
 * gateway answers 200 all, 207 some (others' backends did not answer), 503 none (a CliError
 * from ok(), exit 6).
 * @param {{ results: { name: string; route: string | null; outcome: string; error: string | null }[]; limits: { name: string; route: string | null; used: number | null; remaining: number | null }[] }} report
 * @param {Response} response
 * @param {boolean} json
 */
function printReset(report, response, json) {
  if (json) printJson(report);
  else
    console.log(
      table(
        ["LIMIT", "ROUTE", "OUTCOME", "USED", "REMAINING"],
        report.results.map((r) => {
          const now = report.limits.find((l) => l.name === r.name && l.route === r.route);
          return [r.name, r.route, r.outcome === "reset" ? color.green("reset") : color.red(`not reset (${r.error ?? "failed"})`), now?.used, now?.remaining];
        }),
      ),
    );
  const failed = report.results.filter((r) => r.outcome !== "reset");
  if (failed.length) {
    const which = failed.map((r) => (r.route ? `${r.name} (route ${r.route})` : r.name)).join(", ");
    throw new CliError(`${failed.length} of ${report.results.length} limits not reset: the limiter backend of ${which} did not answer. Try again shortly.`, EXIT.PARTIAL, {
      code: failed[0]?.error ?? undefined,
      status: response.status,
      requestId: response.headers.get("x-request-id") ?? undefined,
    });
  }
}
