import { chmod, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, inject, it } from "vitest";
import { CLI_TYPES_FILE, renderAdminApiTypes } from "../../scripts/cli-types.mjs";
import { OPENAPI_FILE } from "../../scripts/openapi.mjs";
import { d1Execute } from "../../scripts/test-gateway.mjs";
import { cli, cliJson, proxy, uniqueName } from "./cli";

const gatewayUrl = inject("gatewayUrl");
const adminToken = inject("adminToken");

describe("the CLI's typed client", () => {
  it("matches the admin OpenAPI document the gateway serves (run `npm run cli:types` after changing the admin API)", async () => {
    // Served by the asset layer from public/ (no token), the committed file byte for byte.
    const res = await fetch(`${gatewayUrl}/admin/v1/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    const text = await res.text();
    expect(text === (await readFile(OPENAPI_FILE, "utf8"))).toBe(true);
    const doc = JSON.parse(text);
    const committed = await readFile(CLI_TYPES_FILE, "utf8");
    expect(committed === (await renderAdminApiTypes(doc)), "cli/admin-api.d.ts is stale: run `npm run cli:types`").toBe(true);
  });
});

describe("npx portcullis", () => {
  it("runs the package's bin from the repo, offline, without a build step", async () => {
    const { execFile } = await import("node:child_process");
    const out = await new Promise<string>((resolve, reject) =>
      execFile("npm", ["exec", "--offline", "--", "portcullis", "--version"], { cwd: path.resolve(import.meta.dirname, "../..") }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    expect(out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});

describe("portcullis users, keys, roles", () => {
  it("manages a user end to end; the issued key works through the proxy until revoked", async () => {
    const role = uniqueName("cli-role");
    const created = await cli(["roles", "create", role, "--permission", "echo:read,echo:write", "--description", "from the CLI"]);
    expect(created).toMatchObject({ code: 0, stderr: "" });
    expect(created.stdout).toMatch(new RegExp(`^Created role ${role} \\(rol_[0-9A-Za-z]+\\)\\n$`));

    const name = uniqueName("cli-user");
    const user = await cliJson(["users", "create", name, "--group", "partner", "--role", role, "--metadata", '{"team":"billing"}']);
    expect(user).toMatchObject({ name, group: "partner", roles: [role], metadata: { team: "billing" }, status: "active" });

    // The key alone on stdout, so `KEY=$(portcullis keys issue …)` works; the warning on stderr.
    const issued = await cli(["keys", "issue", name, "--name", "ci", "--expires", "30d"]);
    expect(issued.code).toBe(0);
    expect(issued.stdout).toMatch(/^pcl_\S+\n$/);
    expect(issued.stderr).toContain("shown once");
    const key = issued.stdout.trim();
    expect((await proxy(`/echo/cli-${name}`, key)).status).toBe(200);

    // The user shows with its key's start, never the key.
    const shown = await cli(["users", "show", name]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/^id\s+usr_/m);
    expect(shown.stdout).toContain(key.slice(0, 8));
    expect(shown.stdout).not.toContain(key);
    const listed = await cliJson(["keys", "list", name]);
    expect(listed).toHaveLength(1);
    expect(JSON.stringify(listed)).not.toContain(key);

    // Rotation with grace: both keys work; the old one has a new expiry.
    const rotated = await cliJson(["keys", "rotate", listed[0].id, "--grace", "1h"]);
    expect(rotated.key).toMatch(/^pcl_/);
    expect(rotated.previous).toMatchObject({ id: listed[0].id, status: "active" });
    expect(Date.parse(rotated.previous.expiresAt) - Date.now()).toBeGreaterThan(3500_000);
    expect((await proxy(`/echo/cli-${name}`, key)).status).toBe(200);
    expect((await proxy(`/echo/cli-${name}`, rotated.key)).status).toBe(200);

    const revoked = await cli(["keys", "revoke", rotated.id]);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain("revoked");
    expect((await proxy(`/echo/cli-${name}`, rotated.key)).status).toBe(401);

    // Disable refuses every key of the user; enable restores them.
    expect((await cli(["users", "disable", name])).stdout).toContain("disabled");
    expect((await proxy(`/echo/cli-${name}`, key)).status).toBe(401);
    expect((await cli(["users", "enable", name])).code).toBe(0);
    expect((await proxy(`/echo/cli-${name}`, key)).status).toBe(200);

    const updated = await cliJson(["users", "update", name, "--no-group", "--description", "billing", "--remove-role", role]);
    expect(updated).toMatchObject({ group: null, description: "billing", roles: [] });

    const deleted = await cli(["users", "delete", name, "--yes"]);
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toContain("revoked 1 key(s)");
    expect((await proxy(`/echo/cli-${name}`, key)).status).toBe(401);
  });

  it("prints aligned tables without colour when piped, and with colour when forced", async () => {
    const name = uniqueName("cli-table");
    await cli(["users", "create", name, "--group", "internal"]);
    const plain = await cli(["users", "list", "--search", name]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).not.toContain("\u001b[");
    const [head, row] = plain.stdout.trimEnd().split("\n");
    expect(head).toMatch(/^ID\s+NAME\s+GROUP\s+STATUS\s+ROLES\s+CREATED$/);
    // Columns line up: each value starts where its header does.
    for (const [col, value] of [
      ["NAME", name],
      ["GROUP", "internal"],
      ["STATUS", "active"],
    ] as const) {
      expect(row!.indexOf(value)).toBe(head!.indexOf(col));
    }
    const coloured = await cli(["users", "list", "--search", name], { env: { FORCE_COLOR: "1" } });
    expect(coloured.stdout).toContain("\u001b[");
  });

  it("updates and deletes roles by name", async () => {
    const role = uniqueName("cli-role");
    await cli(["roles", "create", role, "--permission", "a:read"]);
    const updated = await cliJson(["roles", "update", role, "--add-permission", "a:write", "--remove-permission", "a:read"]);
    expect(updated.permissions).toEqual(["a:write"]);
    const list = await cliJson<Array<{ name: string }>>(["roles", "list"]);
    expect(list.map((r) => r.name)).toContain(role);
    expect((await cli(["roles", "delete", role, "--yes"])).code).toBe(0);
    expect((await cli(["roles", "show", role])).code).toBe(4);
  });
});

describe("errors and exit codes", () => {
  it("exit 3 on a wrong admin token, with the problem's detail, code and requestId", async () => {
    const r = await cli(["users", "list"], { env: { PORTCULLIS_ADMIN_TOKEN: "wrong-token-0123456789" } });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("error: Send the admin token as `Authorization: Bearer <ADMIN_TOKEN>`.");
    expect(r.stderr).toMatch(/code ADMIN_UNAUTHORIZED, HTTP 401, requestId req_[0-9a-f]{32}/);
    expect(r.stdout).toBe("");
  });

  it("exit 3 once wrong tokens have throttled the address — the right token too — until the README's DELETE clears it", async () => {
    // Every CLI call here comes from 127.0.0.1, one bucket for the whole e2e run: start from a
    // clean count, and leave one behind whatever happens.
    const clear = () => d1Execute(inject("gatewayPersist"), "DELETE FROM admin_sign_in_failures");
    await clear();
    try {
      for (let i = 0; i < 5; i++) expect((await cli(["users", "list"], { env: { PORTCULLIS_ADMIN_TOKEN: "wrong-token-0123456789" } })).code).toBe(3);
      const r = await cli(["users", "list"]);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/error: Too many wrong admin tokens from this address; try again in \d+ s\./);
      expect(r.stderr).toMatch(/code ADMIN_THROTTLED, HTTP 429, requestId req_[0-9a-f]{32}/);
      expect(r.stderr).toContain('npx wrangler d1 execute DB --remote --command "DELETE FROM admin_sign_in_failures"');
      expect(r.stdout).toBe("");
    } finally {
      await clear();
    }
    expect((await cli(["users", "list"])).code).toBe(0);
  });

  it("exit 4 when the user or key does not exist", async () => {
    const r = await cli(["users", "show", "no-such-user-anywhere"]);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('No proxy user named "no-such-user-anywhere"');
    const k = await cli(["keys", "revoke", "key_0000000000000000000000"]);
    expect(k.code).toBe(4);
    expect(k.stderr).toMatch(/code KEY_NOT_FOUND, HTTP 404, requestId req_/);
  });

  it("exit 5 when the gateway rejects the request (conflict, validation)", async () => {
    const name = uniqueName("cli-dup");
    await cli(["users", "create", name]);
    const dup = await cli(["users", "create", name]);
    expect(dup.code).toBe(5);
    expect(dup.stderr).toContain(`A proxy user named "${name}" already exists.`);
    expect(dup.stderr).toContain("code CONFLICT");
    const bad = await cli(["users", "create", uniqueName("cli-bad"), "--allow-ip", "not-an-ip"]);
    expect(bad.code).toBe(5);
    expect(bad.stderr).toContain("code VALIDATION_FAILED");
  });

  it("exit 2 on usage errors, before anything is sent", async () => {
    expect((await cli(["users", "frobnicate"])).code).toBe(2);
    expect((await cli(["keys", "rotate", "key_x", "--grace", "soon"])).code).toBe(2);
    const noUrl = await cli(["users", "list"], { env: { PORTCULLIS_URL: undefined } });
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toContain("No gateway URL");
    expect((await cli(["users", "delete", "whoever"])).code).not.toBe(0);
  });

  it("exit 6 when the gateway cannot be reached", async () => {
    const r = await cli(["users", "list"], { env: { PORTCULLIS_URL: "http://127.0.0.1:9" } });
    expect(r.code).toBe(6);
    expect(r.stderr).toContain("Cannot reach the gateway at http://127.0.0.1:9");
  });
});

describe("profiles", () => {
  it("picks a gateway from the profile file; a token in a world-readable file is refused", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "pcl-profile-"));
    const file = path.join(dir, "config.yaml");
    await writeFile(file, `default: local\nprofiles:\n  local:\n    url: ${gatewayUrl}\n    tokenEnv: MY_GATEWAY_TOKEN\n  broken:\n    url: http://127.0.0.1:9\n    token: inline-token-0123456789\n`);
    const env = { PORTCULLIS_CONFIG: file, PORTCULLIS_URL: undefined, PORTCULLIS_ADMIN_TOKEN: undefined };
    const viaDefault = await cli(["roles", "list"], { env: { ...env, MY_GATEWAY_TOKEN: adminToken } });
    expect(viaDefault.code).toBe(0);
    await chmod(file, 0o644);
    const leaky = await cli(["--profile", "broken", "roles", "list"], { env });
    expect(leaky.code).toBe(2);
    expect(leaky.stderr).toContain("readable by others");
    await chmod(file, 0o600);
    const privateFile = await cli(["--profile", "broken", "roles", "list"], { env });
    expect(privateFile.code).toBe(6);
    expect((await cli(["--profile", "nope", "roles", "list"], { env })).stderr).toContain('No profile "nope"');
  });
});

describe("portcullis apply", () => {
  async function fileWith(text: string) {
    const dir = await mkdtemp(path.join(tmpdir(), "pcl-apply-"));
    const file = path.join(dir, "access.yaml");
    await writeFile(file, text);
    return file;
  }

  it("shows a diff, applies it, prints new keys once, and is idempotent", async () => {
    const role = uniqueName("apply-role");
    const user = uniqueName("apply-user");
    const spec = (perms: string, status = "active") => `
roles:
  - name: ${role}
    description: Managed by apply
    permissions: [${perms}]
users:
  - name: ${user}
    group: partner
    status: ${status}
    roles: [${role}]
    metadata: { team: payments }
    keys:
      - name: prod
`;
    const file = await fileWith(spec("echo:read"));

    const dry = await cli(["apply", file, "--dry-run"]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`+ role ${role}  permissions: [echo:read]`);
    expect(dry.stdout).toContain(`+ user ${user}`);
    expect(dry.stdout).toContain(`+ key ${user}/prod`);
    expect(dry.stdout).toContain("Plan: 3 to create, 0 to change, 0 to delete");
    expect((await cli(["users", "show", user])).code).toBe(4);

    // Not on a terminal and no --yes: refuse rather than guess.
    const unconfirmed = await cli(["apply", file]);
    expect(unconfirmed.code).toBe(2);
    expect((await cli(["users", "show", user])).code).toBe(4);

    const applied = await cli(["apply", file, "--yes"]);
    expect(applied.code).toBe(0);
    const key = /^\s+\S+\/prod\s+key_\S+\s+(pcl_\S+)$/m.exec(applied.stdout)?.[1];
    expect(key).toBeTruthy();
    expect((await proxy(`/echo/apply-${user}`, key!)).status).toBe(200);
    expect(await readFile(file, "utf8")).toBe(spec("echo:read"));

    const again = await cli(["apply", file, "--yes"]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("Plan: 0 to create, 0 to change, 0 to delete, 3 unchanged.");
    expect(again.stdout).not.toContain("pcl_");

    await writeFile(file, spec("echo:read, echo:write", "disabled"));
    const changed = await cliJson(["apply", file, "--yes"]);
    expect(changed.summary).toEqual({ create: 0, update: 2, delete: 0, unchanged: 1 });
    expect(changed.changes).toContainEqual({ kind: "user", op: "update", name: user, changes: [{ field: "status", from: "active", to: "disabled" }] });
    expect(changed.issuedKeys).toEqual([]);
    expect((await proxy(`/echo/apply-${user}`, key!)).status).toBe(401);
  });

  it("prunes users and roles the file does not list only with --prune", async () => {
    const keep = uniqueName("apply-keep");
    const stray = uniqueName("apply-stray");
    await cli(["users", "create", stray]);
    const file = await fileWith(JSON.stringify({ users: [{ name: keep }] }));
    const plan = await cliJson(["apply", file, "--dry-run", "--prune"]);
    expect(plan.changes).toContainEqual({ kind: "user", op: "delete", name: stray, changes: [] });
    expect((await cli(["apply", file, "--yes"])).code).toBe(0);
    expect((await cli(["users", "show", stray])).code).toBe(0);
    expect((await cli(["apply", file, "--yes", "--prune"])).code).toBe(0);
    expect((await cli(["users", "show", stray])).code).toBe(4);
    expect((await cli(["users", "show", keep])).code).toBe(0);
  });

  it("rejects files holding keys or unknown fields, naming the field", async () => {
    const withKey = await fileWith(`users:\n  - name: x\n    keys:\n      - name: prod\n        key: pcl_pasted_secret\n`);
    const r = await cli(["apply", withKey, "--dry-run"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('users[0].keys[0]: "key" is not allowed');
    const typo = await fileWith(`roles:\n  - name: r\n    permisions: [a]\n`);
    expect((await cli(["apply", typo, "--dry-run"])).stderr).toContain('unknown field "permisions"');
  });
});
