import { eq } from "drizzle-orm";
import type { Database } from "../db";
import { roleLimits, userLimits } from "../db/schema";
import type { Env } from "../env";
import type { CompiledGateway } from "../gateway/types";
import { stateSlot } from "../limits/algorithms";
import { backendFor, limitRegistry, specFor, subjectKey, withinBudget, type LimitDefinition } from "../limits/engine";
import { isolateLeaseBook } from "../limits/lease-book";
import { effectiveLimit, isolateOverrideCache, loadUserOverrides, type LimitSource } from "../limits/overrides";
import { GatewayError } from "../errors";
import { adminAuditInsert, type AdminActor } from "./admin-audit";
import { findRole } from "./roles";
import { findUser } from "./users";

/** An override changed: this isolate re-reads overrides and forgets refusals made under the old limits. */
function overridesChanged(): void {
  isolateOverrideCache.purge();
  isolateLeaseBook.clearRefusals();
}

/** Overrides as the admin API shows them: limit name → { limit, updatedAt }. */
export type OverridesView = Record<string, { limit: number; updatedAt: string }>;
export type OverridesInput = Record<string, { limit: number }>;

const view = (rows: { limitName: string; limit: number; updatedAt: Date }[]): OverridesView =>
  Object.fromEntries(rows.map((r) => [r.limitName, { limit: r.limit, updatedAt: r.updatedAt.toISOString() }]));

/** Every limit definition in the gateway, one per limit name (defineGateway refuses one name with two counters), with its routes. */
export function limitDefinitions(gateway: CompiledGateway): { def: LimitDefinition; routes: string[] }[] {
  const byName = new Map<string, { def: LimitDefinition; routes: string[] }>();
  for (const route of gateway.routes) {
    for (const p of route.plugins) {
      const def = limitRegistry.get(p.handler);
      if (!def) continue;
      const e = byName.get(def.name);
      if (e) e.routes.push(route.name);
      else byName.set(def.name, { def, routes: [route.name] });
    }
  }
  return [...byName.values()];
}

/** Whether a limit keeps one counter per proxy user (optionally also per group / route), so a user's usage can be shown. */
/** What a limit counts by that belongs to one caller (user, key, client address); without any, its counters are shared. */
const callerParts = (by: readonly string[]) => by.filter((p) => p === "user" || p === "key" || p === "ip");
/** Counted by group and/or route only: one counter for a whole group or route, read and reset as the limit's own. */
export const isSharedLimit = (by: readonly string[]) => callerParts(by).length === 0;
const countsPerUser = (def: LimitDefinition) => def.by.includes("user") && !def.by.some((p) => p === "key" || p === "ip");
const windowOf = (def: LimitDefinition) => (def.kind === "rate" ? `${def.windowMs / 1000}s` : null);

/** A configured limit as admins see it: its route-config default and how it counts. */
export interface LimitDefinitionView {
  name: string;
  kind: "rate" | "quota";
  algorithm: string;
  /** The default from gateway.config.ts (before role and user overrides). */
  limit: number;
  window: string | null;
  period: string | null;
  by: string[];
  /** Routes whose chain runs this limit. */
  routes: string[];
  /** Counted per user: `…/limits/status` reports this user's usage of it. */
  perUser: boolean;
  dryRun: boolean;
  failMode: "open" | "closed";
}

/** Every limit the gateway config declares, by name: what role and user overrides can name. */
export function listLimitDefinitions(gateway: CompiledGateway): LimitDefinitionView[] {
  return limitDefinitions(gateway).map(({ def, routes }) => ({
    name: def.name,
    kind: def.kind,
    algorithm: def.algorithm,
    limit: def.limit,
    window: windowOf(def),
    period: def.period ?? null,
    by: def.by,
    routes,
    perUser: countsPerUser(def),
    dryRun: def.dryRun,
    failMode: def.failMode,
  }));
}

/** Only names the gateway config declares can be overridden: a typo must not silently do nothing. */
function checkNames(gateway: CompiledGateway, input: OverridesInput): void {
  const known = new Set(limitDefinitions(gateway).map((d) => d.def.name));
  const unknown = Object.keys(input).filter((n) => !known.has(n));
  if (unknown.length) {
    throw new GatewayError("VALIDATION_FAILED", `Unknown limit name(s): ${unknown.join(", ")}. Known: ${[...known].join(", ") || "(none configured)"}.`, {
      errors: unknown.map((n) => ({ path: `limits.${n}`, message: "no rate-limit or quota plugin has this name" })),
    });
  }
}

export async function getUserOverrides(db: Database, userId: string): Promise<OverridesView> {
  await findUser(db, userId);
  return view(await db.select().from(userLimits).where(eq(userLimits.userId, userId)));
}

/** Replaces a user's whole override set (one transaction with its audit row). */
export async function setUserOverrides(db: Database, gateway: CompiledGateway, who: AdminActor, userId: string, input: OverridesInput): Promise<OverridesView> {
  await findUser(db, userId);
  checkNames(gateway, input);
  const before = await getUserOverrides(db, userId);
  const now = new Date();
  const rows = Object.entries(input).map(([limitName, o]) => ({ userId, limitName, limit: o.limit, createdAt: now, updatedAt: now }));
  try {
    await db.batch([
      db.delete(userLimits).where(eq(userLimits.userId, userId)),
      ...rows.map((r) => db.insert(userLimits).values(r)),
      adminAuditInsert(db, who, { action: "user.limits.set", targetType: "user", targetId: userId, before: { limits: before }, after: { limits: view(rows) } }, now),
    ]);
  } catch (err) {
    // The user deleted since the check fails the overrides' FOREIGN KEY: 404, not 500.
    await findUser(db, userId);
    throw err;
  }
  overridesChanged();
  return view(rows);
}

export async function clearUserOverrides(db: Database, who: AdminActor, userId: string): Promise<void> {
  const before = await getUserOverrides(db, userId);
  const now = new Date();
  await db.batch([
    db.delete(userLimits).where(eq(userLimits.userId, userId)),
    adminAuditInsert(db, who, { action: "user.limits.clear", targetType: "user", targetId: userId, before: { limits: before }, after: { limits: {} } }, now),
  ]);
  overridesChanged();
}

export async function getRoleOverrides(db: Database, roleId: string): Promise<OverridesView> {
  await findRole(db, roleId);
  return view(await db.select().from(roleLimits).where(eq(roleLimits.roleId, roleId)));
}

export async function setRoleOverrides(db: Database, gateway: CompiledGateway, who: AdminActor, roleId: string, input: OverridesInput): Promise<OverridesView> {
  await findRole(db, roleId);
  checkNames(gateway, input);
  const before = await getRoleOverrides(db, roleId);
  const now = new Date();
  const rows = Object.entries(input).map(([limitName, o]) => ({ roleId, limitName, limit: o.limit, createdAt: now, updatedAt: now }));
  try {
    await db.batch([
      db.delete(roleLimits).where(eq(roleLimits.roleId, roleId)),
      ...rows.map((r) => db.insert(roleLimits).values(r)),
      adminAuditInsert(db, who, { action: "role.limits.set", targetType: "role", targetId: roleId, before: { limits: before }, after: { limits: view(rows) } }, now),
    ]);
  } catch (err) {
    // The role deleted since the check fails the overrides' FOREIGN KEY: 404, not 500.
    await findRole(db, roleId);
    throw err;
  }
  overridesChanged();
  return view(rows);
}

export async function clearRoleOverrides(db: Database, who: AdminActor, roleId: string): Promise<void> {
  const before = await getRoleOverrides(db, roleId);
  const now = new Date();
  await db.batch([
    db.delete(roleLimits).where(eq(roleLimits.roleId, roleId)),
    adminAuditInsert(db, who, { action: "role.limits.clear", targetType: "role", targetId: roleId, before: { limits: before }, after: { limits: {} } }, now),
  ]);
  overridesChanged();
}

export interface LimitStatus {
  name: string;
  kind: "rate" | "quota";
  algorithm: string;
  by: string[];
  /** The route this counter belongs to, when the limit counts per route. */
  route: string | null;
  window: string | null;
  period: string | null;
  limit: number;
  source: LimitSource;
  backend: "durable-object" | "upstash";
  dryRun: boolean;
  failMode: "open" | "closed";
  /**
   * Counted by the backend, less the tokens the isolate answering holds unspent; tokens other
   * isolates have leased and not yet spent are included (they cannot be seen from here).
   */
  used: number | null;
  remaining: number | null;
  resetAt: string | null;
  /** Set (and the figures null) when this limit's backend could not be read. */
  error: "LIMITER_UNAVAILABLE" | null;
  /**
   * The counter is not this user's alone: the limit counts by group (and the user has one) or only
   * by route, so everyone in the group, or on the route, spends from it. Shown because it can
   * refuse this user; never reset through one user (that would reset everyone's).
   */
  shared: boolean;
}

/** One counter of a limit: its subject key in the backend, its route when the limit counts per route. */
interface Counter {
  def: LimitDefinition;
  route: string | null;
  key: string;
  shared: boolean;
}

/**
 * The counters a user's requests spend from: every configured limit counted by user, group and/or
 * route — the user's own (`shared: false`) and those of the user's group or of a whole route
 * (`shared: true`). Limits counted by key or client IP are not the user's and not listed.
 */
function userCounters(gateway: CompiledGateway, user: { id: string; group: string | null }): Counter[] {
  const out: Counter[] = [];
  for (const { def, routes } of limitDefinitions(gateway)) {
    if (def.by.some((p) => p === "key" || p === "ip")) continue;
    const perRoute = def.by.includes("route");
    // A group limit counts a user without a group on their own (subjectKey).
    const shared = !def.by.includes("user") && !(def.by.includes("group") && !user.group);
    for (const route of perRoute ? routes : [routes[0]!]) {
      out.push({ def, route: perRoute ? route : null, key: subjectKey(def, { userId: user.id, keyId: undefined, group: user.group, clientIp: undefined, route }), shared });
    }
  }
  return out;
}

/** One counter's usage under `limit`. One unreachable backend must not hide the others: it is reported on its own line. */
async function counterStatus({ def, route, key, shared }: Counter, env: Env, { limit, source }: { limit: number; source: LimitSource }, now: number): Promise<LimitStatus> {
  const backend = backendFor(def, env);
  const spec = specFor(def, limit, now);
  // The backend counts every token it granted, spent or not. Tokens this isolate holds unspent on a
  // live lease of the same counter (a quota's returned tokens among them) are not used: take them
  // off, so an admin on the isolate that serves the user sees what was really spent. Tokens other
  // isolates hold cannot be seen from here and stay counted (README, "Hot path: token leasing").
  // Only a lease held both before and after the read, and only its fewer tokens then: a lease that
  // lands during the read may not be in the backend's answer, and taking it off would undercount.
  const id = `${backend.kind}|${key}|${stateSlot(spec)}`;
  const before = isolateLeaseBook.heldLease(id, Date.now());
  const usage = await withinBudget(backend, def.timeoutMs, () => backend.usage(key, spec)).catch(() => null);
  const after = isolateLeaseBook.heldLease(id, Date.now());
  const held =
    usage && before && after && before.window === usage.window && after.window === before.window && after.sentAt === before.sentAt ? Math.min(before.tokens, after.tokens) : 0;
  return {
    name: def.name,
    kind: def.kind,
    algorithm: def.algorithm,
    by: def.by,
    route,
    window: windowOf(def),
    period: def.period ?? null,
    limit,
    source,
    backend: backend.kind,
    dryRun: def.dryRun,
    failMode: def.failMode,
    used: usage ? Math.max(0, usage.used - held) : null,
    remaining: usage ? Math.min(limit, usage.remaining + held) : null,
    resetAt: usage ? new Date(now + usage.resetMs).toISOString() : null,
    error: usage ? null : "LIMITER_UNAVAILABLE",
    shared,
  };
}

export async function userLimitStatus(db: Database, gateway: CompiledGateway, env: Env, userId: string): Promise<{ userId: string; limits: LimitStatus[] }> {
  const user = await findUser(db, userId);
  const overrides = await loadUserOverrides(db, userId);
  const now = Date.now();
  const limits = await Promise.all(userCounters(gateway, user).map((c) => counterStatus(c, env, effectiveLimit(overrides, c.def.name, c.def.limit), now)));
  return { userId, limits };
}

/** What a reset did to one of the user's counters. */
export interface LimitResetResult {
  name: string;
  /** The route of this counter, when the limit counts per route. */
  route: string | null;
  backend: "durable-object" | "upstash";
  /**
   * `reset`: the backend confirmed the counter is back to zero. `unavailable`: the backend failed
   * or did not answer within the limit's `timeoutMs`, so the reset is not confirmed (a reset is
   * safe to repeat).
   */
  outcome: "reset" | "unavailable";
  error: "LIMITER_UNAVAILABLE" | null;
}

/** "monthly", or "per-route (route orders)" for a counter of a limit counted per route. */
export const counterLabel = (r: Pick<LimitResetResult, "name" | "route">): string => (r.route ? `${r.name} (route ${r.route})` : r.name);

/** The answer when not one of the chosen counters could be reset: nothing changed, try again. */
export function nothingResetError(results: LimitResetResult[]): GatewayError {
  const which = results.map((r) => `"${counterLabel(r)}"`).join(", ");
  return new GatewayError("LIMITER_UNAVAILABLE", `No limit was reset: the limiter backend of ${which} did not answer. Try again shortly.`, { headers: { "retry-after": "1" } });
}

/** A reset's answer: 200 when every counter was reset, 207 when some were; none → the 503 problem (nothing changed). */
export function resetAnswerCode(results: LimitResetResult[]): 200 | 207 {
  const notReset = results.filter((r) => r.outcome !== "reset").length;
  if (notReset && notReset === results.length) throw nothingResetError(results);
  return notReset ? 207 : 200;
}

/**
 * Resets a user's counters (by default its quotas; `names` picks limits, rate or quota), each on
 * its own: one unreachable backend does not stop the others, and the report says per counter
 * what happened. The admin audit row lists the counters reset (and those whose backend did not
 * answer); when none could be reset, nothing changed and no row is written.
 *
 * Every counter's backend is looked up before any is reset, so a missing binding or credential
 * (a configuration error) fails the call before it changes anything.
 *
 * Tokens isolates leased before the reset stay spendable (at most one lease per isolate): a reset
 * forgives usage, it does not revoke what is already handed out. Those tokens belong to the old
 * count: handed back after the reset, they are not credited to the new one (the backend starts a
 * new generation of the counter), so the new count never exceeds the limit.
 */
export async function resetUserLimits(
  db: Database,
  gateway: CompiledGateway,
  env: Env,
  who: AdminActor,
  userId: string,
  names: string[] | undefined,
): Promise<{ userId: string; results: LimitResetResult[] }> {
  const user = await findUser(db, userId);
  // A shared counter (the group's, the route's) is everyone's: resetting it for one user would reset theirs too.
  const counters = userCounters(gateway, user).filter((c) => !c.shared);
  if (names) {
    const known = new Set(counters.map((c) => c.def.name));
    const unknown = names.filter((n) => !known.has(n));
    if (unknown.length) {
      throw new GatewayError("VALIDATION_FAILED", `No per-user limit named: ${unknown.join(", ")}.`, { errors: unknown.map((n) => ({ path: "names", message: `unknown limit "${n}"` })) });
    }
  }
  const overrides = await loadUserOverrides(db, userId);
  const now = Date.now();
  const chosen = counters.filter((c) => (names ? names.includes(c.def.name) : c.def.kind === "quota"));
  const results = await resetCounters(chosen, env, (def) => effectiveLimit(overrides, def.name, def.limit).limit, now, { userId });
  const after = resetAuditAfter(results);
  if (after) await db.batch([adminAuditInsert(db, who, { action: "user.limits.reset", targetType: "user", targetId: userId, after }, new Date(now))]);
  return { userId, results };
}

/**
 * Resets `counters`, each on its own (see resetUserLimits). Every backend is looked up first, so
 * a configuration error fails the call before anything changes. `whose` goes into the log line of
 * a counter whose backend did not answer.
 */
async function resetCounters(counters: Counter[], env: Env, limitOf: (def: LimitDefinition) => number, now: number, whose: Record<string, string>): Promise<LimitResetResult[]> {
  const chosen = counters.map((c) => ({ ...c, backend: backendFor(c.def, env), spec: specFor(c.def, limitOf(c.def), now) }));
  return Promise.all(
    chosen.map(async ({ def, route, key, backend, spec }): Promise<LimitResetResult> => {
      const result = { name: def.name, route, backend: backend.kind };
      try {
        await withinBudget(backend, def.timeoutMs, () => backend.reset(key, spec));
      } catch (err) {
        // Down, slow or broken: this counter's outcome, never the whole call's.
        console.error(JSON.stringify({ level: "warn", msg: "limit reset failed", ...whose, limit: def.name, route, backend: backend.kind, error: String(err) }));
        return { ...result, outcome: "unavailable", error: "LIMITER_UNAVAILABLE" };
      }
      isolateLeaseBook.forget(`${backend.kind}|${key}|${stateSlot(spec)}`);
      return { ...result, outcome: "reset", error: null };
    }),
  );
}

/** The audit row's `after` for a reset: what was reset and what was not; null when nothing was (no row then). */
function resetAuditAfter(results: LimitResetResult[]): Record<string, unknown> | null {
  const reset = results.filter((r) => r.outcome === "reset");
  const unavailable = results.filter((r) => r.outcome !== "reset");
  if (!reset.length && results.length) return null;
  return { reset: reset.map(({ name, route }) => ({ name, route })), ...(unavailable.length ? { unavailable: unavailable.map(({ name, route }) => ({ name, route })) } : {}) };
}

/**
 * The counters of a shared limit — counted by group and/or route only, so no user owns them: the
 * group's (name it), one per route when the limit counts by route. Limits counted per user, key
 * or client IP are refused (a user's are under `/users/{id}/limits`).
 */
function sharedCounters(gateway: CompiledGateway, name: string, group: string | undefined): Counter[] {
  const entry = limitDefinitions(gateway).find((d) => d.def.name === name);
  if (!entry) throw new GatewayError("LIMIT_NOT_FOUND", `No rate-limit or quota plugin is named "${name}".`);
  const { def, routes } = entry;
  const own = callerParts(def.by);
  if (own.length) throw new GatewayError("VALIDATION_FAILED", `"${name}" is counted per ${own.join(" + ")}, not shared: each user's usage of it is with that user's limits.`);
  const byGroup = def.by.includes("group");
  if (byGroup !== (group !== undefined)) {
    throw new GatewayError("VALIDATION_FAILED", byGroup ? `"${name}" is counted per group: name one (?group=).` : `"${name}" is not counted per group.`, { errors: [{ path: "group", message: byGroup ? "required" : "not allowed" }] });
  }
  const perRoute = def.by.includes("route");
  return (perRoute ? routes : [routes[0]!]).map((route) => ({
    def,
    route: perRoute ? route : null,
    key: subjectKey(def, { userId: undefined, keyId: undefined, group, clientIp: undefined, route }),
    shared: true,
  }));
}

/** Usage of a shared limit's counters, under the configured limit (overrides are per user and role). */
export async function sharedLimitStatus(gateway: CompiledGateway, env: Env, name: string, group: string | undefined): Promise<{ name: string; group: string | null; limits: LimitStatus[] }> {
  const now = Date.now();
  const limits = await Promise.all(sharedCounters(gateway, name, group).map((c) => counterStatus(c, env, { limit: c.def.limit, source: "config" }, now)));
  return { name, group: group ?? null, limits };
}

/** Resets a shared limit's counters (a group's quota, say), each on its own; audited as `limit.reset`. */
export async function resetSharedLimit(db: Database, gateway: CompiledGateway, env: Env, who: AdminActor, name: string, group: string | undefined): Promise<{ name: string; group: string | null; results: LimitResetResult[] }> {
  const counters = sharedCounters(gateway, name, group);
  const now = Date.now();
  const results = await resetCounters(counters, env, (def) => def.limit, now, { limitName: name, ...(group ? { group } : {}) });
  const after = resetAuditAfter(results);
  if (after) await db.batch([adminAuditInsert(db, who, { action: "limit.reset", targetType: "limit", targetId: name, after: { ...(group ? { group } : {}), ...after } }, new Date(now))]);
  return { name, group: group ?? null, results };
}

/** One limit on a user's page: its default, the overrides that apply, the result and the user's counters. */
export interface UserLimitOverview extends LimitDefinitionView {
  userOverride: number | null;
  /** The most generous override among the user's roles. */
  roleOverride: { limit: number; role: string } | null;
  effective: { limit: number; source: LimitSource };
  /** This user's counters (one per route when the limit also counts by route); empty when not counted per user. */
  counters: LimitStatus[];
}

/**
 * Everything the dashboard shows about a user's limits, composed from the same services as the
 * admin API (`GET …/limits`, `…/limits/status`) and the same precedence rule (effectiveLimit).
 */
export async function userLimitsOverview(db: Database, gateway: CompiledGateway, env: Env, userId: string): Promise<UserLimitOverview[]> {
  const [status, overrides] = await Promise.all([userLimitStatus(db, gateway, env, userId), loadUserOverrides(db, userId)]);
  return listLimitDefinitions(gateway).map((def) => ({
    ...def,
    userOverride: overrides.user.get(def.name) ?? null,
    roleOverride: overrides.role.get(def.name) ?? null,
    effective: effectiveLimit(overrides, def.name, def.limit),
    counters: status.limits.filter((s) => s.name === def.name),
  }));
}
