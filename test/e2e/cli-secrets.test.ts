import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, inject, it } from "vitest";
import { d1Execute } from "../../scripts/test-gateway.mjs";
import { cli, cliJson, uniqueName } from "./cli";

describe("portcullis secrets", () => {
  it("sets values from stdin or a file (never a flag), lists names and versions only, deletes", async () => {
    const name = `CLI_${Date.now().toString(36).toUpperCase()}`;
    const value = "cli-secret-value-never-printed";

    const first = await cli(["secrets", "set", name], { input: `${value}\n` });
    expect(first).toMatchObject({ code: 0, stderr: "" });
    expect(first.stdout).toBe(`Stored ${name} (global) version 1\n`);
    const second = await cliJson(["secrets", "set", name], { input: `${value}-2` });
    expect(second).toMatchObject({ name, scope: "global", version: 2 });

    const user = await cliJson(["users", "create", uniqueName("sec-user")]);
    const dir = await mkdtemp(path.join(tmpdir(), "pcl-secret-"));
    const file = path.join(dir, "value.txt");
    await writeFile(file, `${value}-user\n`, { mode: 0o600 });
    const bound = await cliJson(["secrets", "set", name, "--from-file", file, "--user", user.name]);
    expect(bound).toMatchObject({ name, scope: "user", userId: user.id, version: 1 });

    const listed = await cli(["secrets", "list", "--name", name]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`^${name}\\s+global\\s+—\\s+—\\s+2\\s+`, "m"));
    expect(listed.stdout).toMatch(new RegExp(`^${name}\\s+user\\s+${user.id}\\s+—\\s+1\\s+`, "m"));
    const json = await cli(["secrets", "list", "--json"]);
    for (const out of [first, listed, json]) expect(out.stdout + out.stderr).not.toContain(value);

    // No flag takes a value: it would land in shell history and `ps`.
    const flag = await cli(["secrets", "set", name, "--value", value]);
    expect(flag.code).toBe(2);
    expect((await cli(["secrets", "set", name], { input: "" })).code).toBe(2);

    expect((await cli(["secrets", "delete", name])).code).toBe(2);
    expect((await cli(["secrets", "delete", name, "--yes"])).code).toBe(0);
    expect(await cliJson(["secrets", "list", "--name", name])).toMatchObject([{ scope: "user" }]);
  });

  it("rekey reports what it re-encrypted, never a value; with every secret under SECRETS_KEY it says the previous key can go", async () => {
    const name = `CLI_REKEY_${Date.now().toString(36).toUpperCase()}`;
    const value = "cli-rekey-value-never-printed";
    expect((await cli(["secrets", "set", name], { input: value })).code).toBe(0);
    const human = await cli(["secrets", "rekey"]);
    expect(human).toMatchObject({ code: 0, stderr: "" });
    expect(human.stdout).toMatch(/^Re-encrypted 0 of (\d+) secret\(s\); \1 already under SECRETS_KEY\.\nNothing is left under the previous key: SECRETS_KEY_PREVIOUS can be removed\.\n$/);
    const json = await cliJson(["secrets", "rekey"]);
    expect(json).toMatchObject({ rekeyed: 0, undecryptable: [] });
    expect(json.total).toBeGreaterThanOrEqual(1);
    expect(json.alreadyCurrent).toBe(json.total);
    expect(human.stdout + JSON.stringify(json)).not.toContain(value);
    // The gateway rekeys a page per call; the CLI follows the pages to the end and sums them.
    const second = `${name}_2`;
    expect((await cli(["secrets", "set", second], { input: value })).code).toBe(0);
    const paged = await cliJson(["secrets", "rekey", "--page-size", "1"]);
    expect(paged.total).toBeGreaterThanOrEqual(2);
    expect(paged.pages).toBe(paged.total);
    expect(paged.alreadyCurrent).toBe(paged.total);
    expect((await cliJson(["secrets", "rekey"])).total).toBe(paged.total);
    const bad = await cli(["secrets", "rekey", "--page-size", "0"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--page-size");
    expect((await cli(["secrets", "delete", second, "--yes"])).code).toBe(0);
    expect((await cli(["secrets", "delete", name, "--yes"])).code).toBe(0);
  });

  it("deletes a secret still bound to a deleted user by the user's id (gateways before 20a29bc left them behind)", async () => {
    const name = `CLI_ORPHAN_${Date.now().toString(36).toUpperCase()}`;
    const user = await cliJson(["users", "create", uniqueName("sec-gone")]);
    expect((await cli(["secrets", "set", name, "--user", user.name], { input: "orphan-value" })).code).toBe(0);
    // The user row deleted behind the API, as an older gateway's DELETE /users left its secrets.
    await d1Execute(inject("gatewayPersist"), `DELETE FROM proxy_users WHERE id = '${user.id}'`);
    expect(await cliJson(["secrets", "list", "--name", name])).toMatchObject([{ scope: "user", userId: user.id }]);
    const r = await cli(["secrets", "delete", name, "--user", user.id, "--yes"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(await cliJson(["secrets", "list", "--name", name])).toEqual([]);
  });

  it("rekey exits 1 when a secret opens with neither key, with --json too", async () => {
    const name = `CLI_TAMPERED_${Date.now().toString(36).toUpperCase()}`;
    expect((await cli(["secrets", "set", name], { input: "value" })).code).toBe(0);
    // Renamed behind the gateway's back: the name is in the ciphertext's associated data, so no key opens it.
    await d1Execute(inject("gatewayPersist"), `UPDATE origin_secrets SET name = '${name}_X' WHERE name = '${name}'`);
    try {
      const human = await cli(["secrets", "rekey"]);
      expect(human.code).toBe(1);
      expect(human.stdout).toContain("1 secret(s) open with neither key");
      expect(human.stdout).toMatch(new RegExp(`^${name}_X\\s+global`, "m"));
      const json = await cli(["secrets", "rekey", "--json"]);
      expect(json.code).toBe(1);
      expect(JSON.parse(json.stdout).undecryptable).toMatchObject([{ name: `${name}_X` }]);
    } finally {
      expect((await cli(["secrets", "delete", `${name}_X`, "--yes"])).code).toBe(0);
    }
  });
});
