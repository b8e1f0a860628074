import { describe, expect, it } from "vitest";
import { cli, cliJson, uniqueName } from "./cli";

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
