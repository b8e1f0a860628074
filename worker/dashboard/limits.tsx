import { Hono } from "hono";
import type { Child } from "hono/jsx";
import { overridesInput } from "../admin/limits";
import { GatewayError } from "../errors";
import * as limits from "../services/limits";
import type { UserLimitOverview } from "../services/limits";
import { findUser, listGroups, type UserView } from "../services/users";
import { formAction, formOf, parseForm, str, uiActor, type DashboardContext, type DashboardEnv, type FormDraft } from "./forms";
import { addNav, BASE, Csrf, Layout, PostButton, when } from "./layout";
import { resetMessages, resetQuery } from "./reset-notice";
import { renderUser, userSections } from "./users";

/**
 * The limits section of a proxy user's page: each configured limit's route default, the role and
 * user overrides that apply, the effective limit, and the user's current usage; a form that
 * replaces the user's overrides, and buttons that remove them or reset usage.
 *
 * Everything goes through the services behind the admin API (`…/limits`, `…/limits/status`,
 * `…/limits/reset`), so precedence, name checks and the admin audit rows are the same; the form
 * is validated with the admin API's own body schema.
 */
export const limitsPages = new Hono<DashboardEnv>();

addNav({ id: "limits", href: `${BASE}/limits`, label: "Limits" });

const userHref = (id: string) => `${BASE}/users/${encodeURIComponent(id)}`;
/** Form fields are `limit.<name>`: limit names are `[a-z0-9][a-z0-9_-]*`, so the dot is unambiguous. */
const FIELD = "limit.";

/** A rejected override form (limit name → typed value), kept for the page that answers it (the operator's input is not lost). */
const drafts = new WeakMap<Request, FormDraft>();

/** "3600s" → "1 h", "60s" → "1 min", "90s" → "90 s": windows as an operator says them. */
function span(window: string | null): string {
  const sec = Number(/^(\d+(?:\.\d+)?)s$/.exec(window ?? "")?.[1]);
  if (!Number.isFinite(sec)) return window ?? "?";
  if (sec >= 3600 && sec % 3600 === 0) return `${sec / 3600} h`;
  if (sec >= 60 && sec % 60 === 0) return `${sec / 60} min`;
  return `${sec} s`;
}
type LimitShape = Pick<limits.LimitDefinitionView, "kind" | "algorithm" | "window" | "period">;
const per = (l: LimitShape) => (l.kind === "rate" ? `per ${span(l.window)}` : `per ${l.period}`);
const kindText = (l: LimitShape) => (l.kind === "rate" ? `rate, ${l.algorithm.replace("-", " ")}, ${per(l)}` : `quota, ${per(l)} (UTC)`);
const sourceText = (s: string) => (s === "user" ? "user override" : s === "config" ? "route default" : `role ${s.slice("role:".length)}`);

userSections.push(async (c: DashboardContext, user: UserView): Promise<Child> => {
  const overview = await limits.userLimitsOverview(c.var.services.db, c.var.gateway, c.env, user.id);
  const csrf = c.var.session.csrfToken;
  const draft = drafts.get(c.req.raw);
  const hasQuotaCounters = overview.some((l) => l.kind === "quota" && l.counters.some((s) => !s.shared));
  return (
    <section aria-labelledby="limits">
      <h2 id="limits">Limits</h2>
      {overview.length === 0 ? (
        <p class="card muted">No rate limits or quotas are configured in gateway.config.ts.</p>
      ) : (
        <>
          <p class="muted">
            Defaults come from the routes in gateway.config.ts. A role override replaces a default (the most generous of the user's roles wins); a user override beats both. Changes apply at once on this
            gateway and everywhere else within the key cache TTL.
          </p>
          <LimitsTable user={user} rows={overview} csrf={csrf} />
          <h3 id="limit-overrides">Override this user's limits</h3>
          <form class="card" method="post" action={`${userHref(user.id)}/limits`} aria-labelledby="limit-overrides">
            <Csrf token={csrf} />
            <p class="muted" id="limit-overrides-help">
              Leave a field empty for no override. Saving replaces the user's whole set of overrides.
            </p>
            <div class="row">
              {overview.map((l) => {
                const id = `lim-${l.name}`;
                const error = draft?.errors.get(l.name);
                const value = draft ? (draft.values[l.name] ?? "") : l.userOverride === null ? "" : String(l.userOverride);
                return (
                  <div class="field">
                    <label for={id}>
                      {l.name} <span class="muted">({per(l)}, default {l.limit})</span>
                    </label>
                    <input
                      id={id}
                      name={`${FIELD}${l.name}`}
                      type="number"
                      min="0"
                      max="1000000000"
                      step="1"
                      inputmode="numeric"
                      value={value}
                      placeholder="no override"
                      aria-invalid={error ? "true" : undefined}
                      aria-describedby={error ? `${id}-error` : "limit-overrides-help"}
                    />
                    {error ? (
                      <span id={`${id}-error`} class="field-error">
                        {error}
                      </span>
                    ) : null}
                  </div>
                );
              })}
              <button type="submit">Save overrides</button>
            </div>
          </form>
          <div class="row">
            <PostButton
              action={`${userHref(user.id)}/limits/delete`}
              csrf={csrf}
              label="Remove all overrides"
              class="secondary"
              confirm={`Remove every limit override of ${user.name}? Role overrides and route defaults apply again.`}
            />
            {hasQuotaCounters ? (
              <PostButton action={`${userHref(user.id)}/limits/reset`} csrf={csrf} label="Reset quota usage" class="danger" confirm={`Reset every quota of ${user.name} to zero?`} />
            ) : null}
          </div>
        </>
      )}
    </section>
  );
});

const LimitsTable = ({ user, rows, csrf }: { user: UserView; rows: UserLimitOverview[]; csrf: string }) => (
  <table class="limits" aria-label="Limits">
    <thead>
      <tr>
        <th scope="col">Limit</th>
        <th scope="col">Kind</th>
        <th scope="col">Counted per</th>
        <th scope="col">Route default</th>
        <th scope="col">Role override</th>
        <th scope="col">User override</th>
        <th scope="col">Effective</th>
        <th scope="col">Used</th>
        <th scope="col">Remaining</th>
        <th scope="col">Resets</th>
        <th scope="col">Actions</th>
      </tr>
    </thead>
    <tbody>
      {rows.flatMap((l) => {
        // Not counted per user (per key or client IP): no usage of this user to show.
        const counters = l.counters.length ? l.counters : [null];
        return counters.map((s, i) => (
          <tr data-limit={l.name}>
            <th scope="row" class="nowrap">
              {l.name}
              {s?.route ? <span class="muted"> ({s.route})</span> : null}
              {s?.shared ? <span class="muted"> (shared)</span> : null}
              {l.dryRun ? <span class="badge expired"> dry run</span> : null}
            </th>
            <td>{kindText(l)}</td>
            <td>{l.by.join(" + ")}</td>
            <td>{l.limit}</td>
            <td>{l.roleOverride ? `${l.roleOverride.limit} (${l.roleOverride.role})` : "—"}</td>
            <td>{l.userOverride ?? "—"}</td>
            <td>
              <strong>{l.effective.limit}</strong> <span class="muted">({sourceText(l.effective.source)})</span>
            </td>
            {s === null ? (
              <td colspan={3} class="muted">
                not counted per user
              </td>
            ) : s.error ? (
              <td colspan={3}>
                <span class="badge disabled">unavailable</span> <span class="muted">the limiter backend ({s.backend}) did not answer</span>
              </td>
            ) : (
              <>
                <td>{s.used}</td>
                <td>{s.remaining === 0 ? <span class="badge disabled">0 — spent</span> : s.remaining}</td>
                <td>{when(s.resetAt)}</td>
              </>
            )}
            <td>
              {s !== null && !s.shared && i === 0 ? (
                <PostButton
                  action={`${userHref(user.id)}/limits/reset`}
                  csrf={csrf}
                  fields={{ names: l.name }}
                  label="Reset"
                  class="small secondary"
                  ariaLabel={`Reset usage of ${l.name}`}
                  confirm={`Reset ${user.name}'s usage of ${l.name} to zero?`}
                />
              ) : s?.shared && i === 0 ? (
                // Everyone's counter: reset as the limit's own, for the user's group (or the route).
                <PostButton
                  action={`${userHref(user.id)}/limits/shared-reset`}
                  csrf={csrf}
                  fields={{ name: l.name }}
                  label="Reset for all"
                  class="small danger"
                  ariaLabel={`Reset the shared usage of ${l.name}`}
                  confirm={`Reset ${l.name} to zero for everyone ${l.by.includes("group") ? `in group ${user.group}` : "on its route"}?`}
                />
              ) : null}
            </td>
          </tr>
        ));
      })}
    </tbody>
  </table>
);

/** The override form's fields, checked with the admin API's body schema; empty means "no override". */
function overridesFrom(values: Record<string, string>): limits.OverridesInput {
  const input: Record<string, { limit: unknown }> = {};
  const notNumbers: Array<{ path: string; message: string }> = [];
  for (const [name, v] of Object.entries(values)) {
    if (v === "") continue;
    if (!/^\d{1,10}$/.test(v)) notNumbers.push({ path: `limits.${name}.limit`, message: "must be a whole number from 0 to 1000000000" });
    input[name] = { limit: Number(v) };
  }
  if (notNumbers.length) throw new GatewayError("VALIDATION_FAILED", notNumbers.map((e) => `${e.path}: ${e.message}`).join("; "), { errors: notNumbers });
  return parseForm(overridesInput(), { limits: input }).limits;
}

/** limit name → message, from a VALIDATION_FAILED's `limits.<name>…` paths. */
function fieldErrors(err: GatewayError): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of err.extra.errors ?? []) {
    const name = /^limits\.([^.]+)/.exec(e.path)?.[1];
    if (name && !out.has(name)) out.set(name, e.message);
  }
  return out;
}

limitsPages.post("/users/:id/limits", async (c) => {
  const id = c.req.param("id");
  const f = await formOf(c);
  const values: Record<string, string> = {};
  for (const [k, v] of Object.entries(f)) if (k.startsWith(FIELD)) values[k.slice(FIELD.length)] = str(v);
  try {
    await limits.setUserOverrides(c.var.services.db, c.var.gateway, uiActor(c), id, overridesFrom(values));
    return c.redirect(`${userHref(id)}?notice=limits#limits`, 303);
  } catch (err) {
    // Bad input: answer with the page itself (400), the operator's values kept and each field's problem beside it.
    if (err instanceof GatewayError && err.code === "VALIDATION_FAILED") {
      drafts.set(c.req.raw, { values, errors: fieldErrors(err) });
      return renderUser(c, id, { error: `The limit overrides were not saved. ${err.detail}` }, 400);
    }
    return formAction(c, userHref(id), () => Promise.reject(err));
  }
});

limitsPages.post("/users/:id/limits/delete", async (c) => {
  const id = c.req.param("id");
  return formAction(c, userHref(id), async () => {
    await limits.clearUserOverrides(c.var.services.db, uiActor(c), id);
    return `${userHref(id)}?notice=limits-cleared#limits`;
  });
});

/**
 * The user's page after a reset. Each counter's outcome travels in the redirect (names only), so
 * the page can say what was reset and what was not; an unreachable limiter is an operational fact
 * to show, not a crash.
 */
function resetNotice(id: string, results: limits.LimitResetResult[]): string {
  return `${userHref(id)}?${resetQuery(results, new URLSearchParams({ notice: "limits-reset" }))}#limits`;
}

// A shared counter from a member's page: the group is the user's own, never taken from the form.
limitsPages.post("/users/:id/limits/shared-reset", async (c) => {
  const id = c.req.param("id");
  const name = str((await formOf(c)).name);
  try {
    const user = await findUser(c.var.services.db, id);
    const byGroup = limits.listLimitDefinitions(c.var.gateway).find((d) => d.name === name)?.by.includes("group");
    const { results } = await limits.resetSharedLimit(c.var.services.db, c.var.gateway, c.env, uiActor(c), name, byGroup ? (user.group ?? undefined) : undefined);
    return c.redirect(resetNotice(id, results), 303);
  } catch (err) {
    return formAction(c, userHref(id), () => Promise.reject(err));
  }
});

limitsPages.post("/users/:id/limits/reset", async (c) => {
  const id = c.req.param("id");
  const f = await formOf(c);
  const names = typeof f.names === "string" ? [str(f.names)] : Array.isArray(f.names) ? f.names.map((n) => n.trim()) : [];
  try {
    const { results } = await limits.resetUserLimits(c.var.services.db, c.var.gateway, c.env, uiActor(c), id, names.length ? names : undefined);
    return c.redirect(resetNotice(id, results), 303);
  } catch (err) {
    return formAction(c, userHref(id), () => Promise.reject(err));
  }
});

// ── the limits gateway.config.ts declares, and the shared ones' usage ──────────────────────────

const limitHref = (name: string, group?: string) => `${BASE}/limits/${encodeURIComponent(name)}${group ? `?group=${encodeURIComponent(group)}` : ""}`;

/**
 * Every declared limit; for the shared ones (a partner group's monthly quota, a route's total),
 * a way to their usage, which no single user's page owns. Per-caller limits are on each user's page.
 */
limitsPages.get("/limits", async (c) => {
  const defs = limits.listLimitDefinitions(c.var.gateway);
  // Suggestions for the group fields (typing any group still works).
  const groups = defs.some((d) => limits.isSharedLimit(d.by) && d.by.includes("group")) ? await listGroups(c.var.services.db, 200) : [];
  return c.html(
    <Layout title="Limits" nav="limits" csrf={c.var.session.csrfToken} error={c.req.query("error")}>
      <p class="muted">
        The rate limits and quotas gateway.config.ts declares, with their route defaults. A limit counted per user, key or client address is on each user's page; one counted by group or route is
        shared, and its usage is here.
      </p>
      {defs.length === 0 ? (
        <p class="card muted">No rate limits or quotas are configured.</p>
      ) : (
        <table aria-label="Declared limits">
          <thead>
            <tr>
              <th scope="col">Limit</th>
              <th scope="col">Kind</th>
              <th scope="col">Default</th>
              <th scope="col">Counted per</th>
              <th scope="col">Routes</th>
              <th scope="col">Shared usage</th>
            </tr>
          </thead>
          <tbody>
            {defs.map((d) => (
              <tr>
                <td class="mono">
                  {d.name}
                  {d.dryRun ? " (dry run)" : ""}
                </td>
                <td>{kindText(d)}</td>
                <td>{d.limit}</td>
                <td>{d.by.join(" + ")}</td>
                <td>{d.routes.join(", ")}</td>
                <td>
                  {!limits.isSharedLimit(d.by) ? (
                    <span class="muted">per caller</span>
                  ) : d.by.includes("group") ? (
                    <form method="get" action={limitHref(d.name)}>
                      <label for={`group-${d.name}`}>Group</label> <input id={`group-${d.name}`} name="group" required maxlength={64} list="known-groups" /> <button class="small secondary">Show</button>
                    </form>
                  ) : (
                    <a href={limitHref(d.name)}>Show</a>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <datalist id="known-groups">
        {groups.map((g) => (
          <option value={g} />
        ))}
      </datalist>
    </Layout>,
  );
});

/** A shared limit's counters (one per route when it counts per route), under its configured limit, with a reset for all. */
limitsPages.get("/limits/:name", async (c) => {
  const name = c.req.param("name");
  const group = c.req.query("group") || undefined;
  let status: Awaited<ReturnType<typeof limits.sharedLimitStatus>>;
  try {
    status = await limits.sharedLimitStatus(c.var.gateway, c.env, name, group);
  } catch (err) {
    if (err instanceof GatewayError && err.status < 500) return c.redirect(`${BASE}/limits?error=${encodeURIComponent(err.detail)}`, 303);
    throw err;
  }
  const msg = c.req.query("notice") === "limits-reset" ? resetMessages(c) : { notice: undefined, error: undefined };
  const title = `${name}${group ? ` · group ${group}` : ""}`;
  return c.html(
    <Layout
      title={title}
      nav="limits"
      csrf={c.var.session.csrfToken}
      notice={msg.notice}
      error={msg.error}
    >
      <p class="muted">
        Everyone {group ? `in group ${group}` : "on its routes"} spends from these counters. Shown under the route default; a role or user override changes the limit a member is held to, not the
        count.
      </p>
      <table aria-label={`Usage of ${name}`}>
        <thead>
          <tr>
            <th scope="col">Counter</th>
            <th scope="col">Used</th>
            <th scope="col">Remaining</th>
            <th scope="col">Limit</th>
            <th scope="col">Resets</th>
          </tr>
        </thead>
        <tbody>
          {status.limits.map((l) => (
            <tr>
              <td>{l.route ? `route ${l.route}` : "all its routes"}</td>
              {l.error ? (
                <td colspan={2}>limiter did not answer</td>
              ) : (
                <>
                  <td>{l.used}</td>
                  <td>{l.remaining}</td>
                </>
              )}
              <td>{l.limit}</td>
              <td>{when(l.resetAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <PostButton
        action={`${BASE}/limits/${encodeURIComponent(name)}/reset`}
        csrf={c.var.session.csrfToken}
        fields={group ? { group } : {}}
        label="Reset for all"
        class="small danger"
        confirm={`Reset ${name} to zero for everyone ${group ? `in group ${group}` : "on its routes"}?`}
      />
      <p>
        <a href={`${BASE}/limits`}>← All limits</a>
      </p>
    </Layout>,
  );
});

limitsPages.post("/limits/:name/reset", async (c) => {
  const name = c.req.param("name");
  const group = str((await formOf(c)).group) || undefined;
  return formAction(c, `${BASE}/limits`, async () => {
    const { results } = await limits.resetSharedLimit(c.var.services.db, c.var.gateway, c.env, uiActor(c), name, group);
    return `${BASE}/limits/${encodeURIComponent(name)}?${resetQuery(results, new URLSearchParams({ ...(group ? { group } : {}), notice: "limits-reset" }))}`;
  });
});
