import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { clearOfHourEdge } from "../window-edges";
import { cli, cliJson, proxy, uniqueName } from "./cli";

describe("portcullis limits", () => {
  it("overrides a user's limit, shows effective limits with their source, removes and resets", async () => {
    const name = uniqueName("lim-user");
    await cliJson(["users", "create", name]);

    const set = await cliJson(["limits", "set", name, "rl-do=7"]);
    expect(set.limits["rl-do"]).toMatchObject({ limit: 7 });
    const merged = await cliJson(["limits", "set", name, "tb-do=3"]);
    expect(Object.keys(merged.limits).sort()).toEqual(["rl-do", "tb-do"]);

    const status = await cliJson(["limits", "show", name]);
    expect(status.limits.find((l: any) => l.name === "rl-do")).toMatchObject({ kind: "rate", limit: 7, source: "user" });
    const table = await cli(["limits", "show", name]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^LIMIT\s+KIND\s+LIMIT\/WINDOW\s+SOURCE\s+USED\s+REMAINING\s+RESETS\s+BACKEND$/m);
    expect(table.stdout).toMatch(/^rl-do\s+rate\s+7\/3600s\s+user\s+0\s+7\s+/m);
    expect(table.stdout).toMatch(/^rl-up\s+rate\s+20\/3600s\s+config\s+LIMITER_UNAVAILABLE\s+/m);

    expect((await cli(["limits", "unset", name, "rl-do"])).code).toBe(0);
    const after = await cliJson(["limits", "show", name]);
    expect(after.limits.find((l: any) => l.name === "rl-do")).toMatchObject({ limit: 20, source: "config" });
    expect(after.limits.find((l: any) => l.name === "tb-do")).toMatchObject({ limit: 3, source: "user" });

    expect((await cli(["limits", "reset", name, "rl-do"])).code).toBe(0);
    expect((await cli(["limits", "set", name, "not a pair"])).code).toBe(2);
  });
});

describe("portcullis limits reset", () => {
  // This gateway's Upstash-backed limits point at a closed port: monthly-up can never be reset.
  it("prints each limit's outcome; exits 0 when all were reset, 8 when some were not, 6 when none could be", async () => {
    const name = uniqueName("reset-user");
    await cliJson(["users", "create", name]);

    const all = await cli(["limits", "reset", name, "rl-do", "per-route"]);
    expect(all.code).toBe(0);
    expect(all.stderr).toBe("");
    expect(all.stdout).toMatch(/^LIMIT\s+ROUTE\s+OUTCOME\s+USED\s+REMAINING$/m);
    expect(all.stdout).toMatch(/^rl-do\s+—\s+reset\s+0\s+20$/m);
    expect(all.stdout).toMatch(/^per-route\s+rl-route-a\s+reset\s+0\s+2$/m);
    expect(all.stdout).toMatch(/^per-route\s+rl-route-b\s+reset\s+0\s+2$/m);

    // Every quota (the default): two are reset, one is not — the command says which, and exits 8.
    const some = await cli(["limits", "reset", name]);
    expect(some.code).toBe(8);
    expect(some.stdout).toMatch(/^monthly\s+—\s+reset\s+0\s+5$/m);
    expect(some.stdout).toMatch(/^monthly-up\s+—\s+not reset \(LIMITER_UNAVAILABLE\)\s+—\s+—$/m);
    expect(some.stdout).toMatch(/^both-quota\s+—\s+reset\s+0\s+3$/m);
    expect(some.stderr).toContain("error: 1 of 3 limits not reset: the limiter backend of monthly-up did not answer. Try again shortly.");
    expect(some.stderr).toMatch(/\(code LIMITER_UNAVAILABLE, HTTP 207, requestId req_[0-9a-f]{32}\)/);
    const asJson = await cli(["limits", "reset", name, "--json"]);
    expect(asJson.code).toBe(8);
    expect(JSON.parse(asJson.stdout).results.map((r: any) => [r.name, r.outcome])).toEqual([
      ["monthly", "reset"],
      ["monthly-up", "unavailable"],
      ["both-quota", "reset"],
    ]);

    // Only the unreachable one: nothing was reset, the gateway answers 503 — exit 6.
    const none = await cli(["limits", "reset", name, "monthly-up"]);
    expect(none.code).toBe(6);
    expect(none.stdout).toBe("");
    expect(none.stderr).toContain('error: No limit was reset: the limiter backend of "monthly-up" did not answer. Try again shortly.');
    expect(none.stderr).toMatch(/\(code LIMITER_UNAVAILABLE, HTTP 503, requestId req_[0-9a-f]{32}\)/);
  });
});

describe("portcullis apply: limits of roles and users", () => {
  // Spends a monthly quota through the proxy: never across an hour edge (test/window-edges.ts).
  beforeEach(() => clearOfHourEdge(60_000), 70_000);

  async function fileWith(text: string) {
    const dir = await mkdtemp(path.join(tmpdir(), "pcl-apply-limits-"));
    const file = path.join(dir, "access.yaml");
    await writeFile(file, text);
    return file;
  }

  it("shows limit changes per name, applies them, is idempotent, and removes them with {}", async () => {
    const role = uniqueName("apply-lim-role");
    const user = uniqueName("apply-lim-user");
    const spec = (roleLimits: string, userLimits: string) => `
roles:
  - name: ${role}
    permissions: [echo:read]
    limits: ${roleLimits}
users:
  - name: ${user}
    roles: [${role}]
    limits: ${userLimits}
    keys:
      - name: prod
`;
    const file = await fileWith(spec("{ api: 7, monthly: 100 }", "{ monthly: 2 }"));

    const dry = await cli(["apply", file, "--dry-run"]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`+ role ${role}  permissions: [echo:read], limits.api: 7, limits.monthly: 100`);
    expect(dry.stdout).toContain(`+ user ${user}  roles: [${role}], limits.monthly: 2`);
    expect(dry.stdout).toContain("Plan: 3 to create, 0 to change, 0 to delete, 0 unchanged.");

    const applied = await cli(["apply", file, "--yes"]);
    expect(applied.code).toBe(0);
    const key = /^\s+\S+\/prod\s+key_\S+\s+(pcl_\S+)$/m.exec(applied.stdout)![1]!;
    const status = await cliJson(["limits", "show", user]);
    expect(status.limits.find((l: any) => l.name === "monthly")).toMatchObject({ limit: 2, source: "user" });
    expect(status.limits.find((l: any) => l.name === "api")).toMatchObject({ limit: 7, source: `role:${role}` });
    // The override is in force: two requests, then the quota is spent.
    expect((await proxy("/quota-do/apply-1", key)).status).toBe(200);
    expect((await proxy("/quota-do/apply-2", key)).status).toBe(200);
    expect((await proxy("/quota-do/apply-3", key)).status).toBe(429);

    const again = await cli(["apply", file, "--yes"]);
    expect(again.stdout).toContain("Plan: 0 to create, 0 to change, 0 to delete, 3 unchanged.");

    // Change the role's set and drop the user's: each limit shows as its own line.
    await writeFile(file, spec("{ api: 9 }", "{}"));
    const plan = await cli(["apply", file, "--dry-run"]);
    expect(plan.stdout).toContain(`~ role ${role}\n    limits.api: 7 → 9\n    limits.monthly: 100 → ∅\n`);
    expect(plan.stdout).toContain(`~ user ${user}\n    limits.monthly: 2 → ∅\n`);
    const changed = await cliJson(["apply", file, "--yes"]);
    expect(changed.summary).toEqual({ create: 0, update: 2, delete: 0, unchanged: 1 });
    expect(changed.changes).toContainEqual({ kind: "user", op: "update", name: user, changes: [{ field: "limits.monthly", from: 2, to: null }] });
    const after = (await cliJson(["limits", "show", user])).limits;
    expect(after.find((l: any) => l.name === "api")).toMatchObject({ limit: 9, source: `role:${role}` });
    // Neither the user's nor the role's monthly override is left: the route default applies.
    expect(after.find((l: any) => l.name === "monthly")).toMatchObject({ limit: 5, source: "config" });
    expect((await cli(["apply", file, "--yes"])).stdout).toContain("Plan: 0 to create, 0 to change, 0 to delete, 3 unchanged.");

    // A file that does not list `limits` leaves the overrides alone.
    await cliJson(["limits", "set", user, "monthly=4"]);
    await writeFile(file, `users:\n  - name: ${user}\n    roles: [${role}]\n`);
    expect((await cli(["apply", file, "--yes"])).stdout).toContain("Plan: 0 to create, 0 to change, 0 to delete, 1 unchanged.");
    expect((await cliJson(["limits", "show", user])).limits.find((l: any) => l.name === "monthly")).toMatchObject({ limit: 4, source: "user" });
  });

  it("refuses unknown limit names and bad values before sending anything, naming the field", async () => {
    const role = uniqueName("apply-lim-bad");
    const unknown = await cli(["apply", await fileWith(`roles:\n  - name: ${role}\n    permissions: []\n    limits: { api: 3, nope: 1 }\n`), "--yes"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(`roles[0] (${role}).limits: unknown limit "nope"; this gateway declares: `);
    expect((await cli(["roles", "show", role])).code).toBe(4);

    for (const [value, message] of [
      ["-1", "must be a whole number from 0 to 1000000000"],
      ["1.5", "must be a whole number"],
      ["ten", "must be a whole number"],
    ]) {
      const r = await cli(["apply", await fileWith(`users:\n  - name: x\n    limits: { monthly: ${value} }\n`), "--dry-run"]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`users[0] (x).limits.monthly: ${message}`);
    }
    const notAMap = await cli(["apply", await fileWith(`users:\n  - name: x\n    limits: [monthly]\n`), "--dry-run"]);
    expect(notAMap.code).toBe(2);
    expect(notAMap.stderr).toContain("users[0] (x).limits must be a map.");
  });
});

describe("portcullis limits list", () => {
  it("lists the gateway's limit definitions with their defaults", async () => {
    const r = await cli(["limits", "list"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^LIMIT\s+KIND\s+DEFAULT\s+COUNTED PER\s+ROUTES\s+FAILS$/m);
    expect(r.stdout).toMatch(/^monthly\s+quota\s+5\/month\s+user\s+quota-do\s+closed$/m);
    expect(r.stdout).toMatch(/^fail-up-down-open\s+rate \(sliding-window\)\s+5\/60s\s+key\s+fail-up-down-open\s+open$/m);
    expect(r.stdout).toMatch(/^per-route\s+rate \(sliding-window\)\s+2\/3600s\s+user\+route\s+rl-route-a, rl-route-b\s+open$/m);
    const json = await cliJson(["limits", "list"]);
    expect(json.find((d: any) => d.name === "api")).toMatchObject({ kind: "rate", limit: 3, perUser: true });
  });
});

describe("portcullis limits shared / reset-shared", () => {
  beforeEach(() => clearOfHourEdge(20_000), 30_000);

  it("shows and resets a group's counter, which every member spends from", async () => {
    const role = uniqueName("shared-role");
    await cli(["roles", "create", role, "--permission", "echo:read"]);
    const group = uniqueName("grp");
    const [a, b] = [uniqueName("shared-a"), uniqueName("shared-b")];
    for (const u of [a, b]) await cliJson(["users", "create", u, "--group", group, "--role", role]);
    const [ka, kb] = [(await cli(["keys", "issue", a])).stdout.trim(), (await cli(["keys", "issue", b])).stdout.trim()];
    // shared-do: 20 per group an hour (test/fixtures/gateway.test.config.ts).
    for (let i = 0; i < 3; i++) expect((await proxy(`/shared-do/${a}-${i}`, ka)).status).toBe(200);
    expect((await proxy(`/shared-do/${b}`, kb)).status).toBe(200);

    const status = await cliJson(["limits", "shared", "shared-do", "--group", group]);
    expect(status).toMatchObject({ name: "shared-do", group, limits: [{ name: "shared-do", limit: 20, shared: true }] });
    expect(status.limits[0].used).toBeGreaterThanOrEqual(4); // leased tokens count as used
    const table = await cli(["limits", "shared", "shared-do", "--group", group]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^LIMIT\s+ROUTE\s+LIMIT\/WINDOW\s+USED\s+REMAINING\s+RESETS\s+BACKEND$/m);
    expect(table.stdout).toMatch(/^shared-do\s+—\s+20\/3600s\s+\d+\s+\d+\s+/m);

    const reset = await cli(["limits", "reset-shared", "shared-do", "--group", group]);
    expect(reset.code).toBe(0);
    expect(reset.stdout).toMatch(/^shared-do\s+—\s+reset\s+0\s+20$/m);
    expect((await cliJson(["limits", "shared", "shared-do", "--group", group])).limits[0].used).toBe(0);

    // Without the group it names nothing: a validation error (exit 5), and nothing is reset.
    const bad = await cli(["limits", "reset-shared", "shared-do"]);
    expect(bad.code).toBe(5);
    expect(bad.stderr).toContain("VALIDATION_FAILED");
  });
});
