import { chmod, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
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

  it("shows a user whose expiry has passed as expired, not active (its keys are refused)", async () => {
    const name = uniqueName("cli-exp");
    const user = await cliJson(["users", "create", name]);
    // Expired behind the API (which refuses to set a passed expiry): no race with the clock.
    await d1Execute(inject("gatewayPersist"), `UPDATE proxy_users SET expires_at = ${Date.now() - 60_000} WHERE id = '${user.id}'`);
    const shown = await cli(["users", "show", name]);
    expect(shown.stdout).toMatch(/^status\s+expired$/m);
    const listed = await cli(["users", "list", "--search", name]);
    expect(listed.stdout).toMatch(new RegExp(`${name}\\s+—\\s+expired\\s`));
    // --json is the API's own answer: the stored status.
    expect((await cliJson(["users", "show", name])).status).toBe("active");
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

  it("finds a user or role by a name shaped like an id (usr_…, rol_…), which the API accepts as a name", async () => {
    const suffix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
    const role = `rol_cli${suffix}`;
    const name = `usr_cli${suffix}`;
    expect((await cli(["roles", "create", role, "--permission", "echo:read"])).code).toBe(0);
    const created = await cliJson(["users", "create", name, "--role", role]);
    expect(created.name).toBe(name);
    // No such id: the reference is then looked up as a name, as for any other name.
    expect(await cliJson(["users", "show", name])).toMatchObject({ id: created.id, name });
    expect(await cliJson(["users", "disable", name])).toMatchObject({ id: created.id, status: "disabled" });
    expect(await cliJson(["roles", "show", role])).toMatchObject({ name: role, permissions: ["echo:read"] });
    // An id still wins, and a reference that is neither is still exit 4.
    expect(await cliJson(["users", "show", created.id])).toMatchObject({ id: created.id, name });
    const missing = await cli(["users", "show", `usr_nobody${suffix}`]);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain("code USER_NOT_FOUND");
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
    // A URL without its scheme is a configuration mistake, not an unreachable gateway (exit 6).
    const noScheme = await cli(["users", "list"], { env: { PORTCULLIS_URL: "localhost:8787" } });
    expect(noScheme.code).toBe(2);
    expect(noScheme.stderr).toContain("Not an http(s) URL: localhost:8787 (from environment");
  });

  it("exit 6 when the gateway cannot be reached", async () => {
    const r = await cli(["users", "list"], { env: { PORTCULLIS_URL: "http://127.0.0.1:9" } });
    expect(r.code).toBe(6);
    expect(r.stderr).toContain("Cannot reach the gateway at http://127.0.0.1:9");
  });
});

/**
 * A local HTTP server for the duration of a test: `handle` answers each request (its body read
 * whole); `seen` lists what arrived, with the Authorization header.
 */
async function localServer(handle: (req: IncomingMessage, body: Buffer, res: ServerResponse) => unknown) {
  const seen: Array<{ method: string; url: string; authorization: string | undefined }> = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization });
    await handle(req, Buffer.concat(chunks), res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

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

  it("takes the URL and the token from one place: half a pair from flags or the environment never pairs with a profile's other half", async () => {
    // Stands for any gateway other than the profile's: it must never see the profile's token.
    const other = await localServer((_req, _body, res) => res.writeHead(200, { "content-type": "application/json" }).end('{"data":[],"nextCursor":null}'));
    try {
      const dir = await mkdtemp(path.join(tmpdir(), "pcl-pair-"));
      const file = path.join(dir, "config.yaml");
      await writeFile(file, `default: local\nprofiles:\n  local:\n    url: ${gatewayUrl}\n    tokenEnv: MY_GATEWAY_TOKEN\n  elsewhere:\n    url: ${other.url}\n    tokenEnv: ELSEWHERE_TOKEN\n`);
      const env = { PORTCULLIS_CONFIG: file, PORTCULLIS_URL: undefined, PORTCULLIS_ADMIN_TOKEN: undefined, MY_GATEWAY_TOKEN: adminToken };

      // PORTCULLIS_URL alone: the default profile's token is not sent to it.
      const urlOnly = await cli(["roles", "list"], { env: { ...env, PORTCULLIS_URL: other.url } });
      expect(urlOnly.code).toBe(2);
      expect(urlOnly.stderr).toContain('PORTCULLIS_URL is given without an admin token (--token or PORTCULLIS_ADMIN_TOKEN)');
      expect(urlOnly.stderr).toContain('profile "local"');
      // --url next to an explicit profile: the same.
      const flagUrl = await cli(["--profile", "local", "--url", other.url, "roles", "list"], { env });
      expect(flagUrl.code).toBe(2);
      expect(flagUrl.stderr).toContain("--url is given without --token");
      // A token from the environment is not sent to the default profile's URL either.
      const tokenOnly = await cli(["roles", "list"], { env: { ...env, PORTCULLIS_ADMIN_TOKEN: adminToken } });
      expect(tokenOnly.code).toBe(2);
      expect(tokenOnly.stderr).toContain("PORTCULLIS_ADMIN_TOKEN is given without a gateway URL");
      // An explicit profile whose tokenEnv is unset does not fall back to PORTCULLIS_ADMIN_TOKEN.
      const unset = await cli(["--profile", "elsewhere", "roles", "list"], { env: { ...env, PORTCULLIS_ADMIN_TOKEN: adminToken } });
      expect(unset.code).toBe(2);
      expect(unset.stderr).toContain('Profile "elsewhere" takes its token from $ELSEWHERE_TOKEN, which is not set.');
      expect(other.seen).toEqual([]);

      // Whole pairs work: the environment's, flags (or a flag with the environment), a profile's.
      expect((await cli(["roles", "list"], { env: { ...env, PORTCULLIS_URL: gatewayUrl, PORTCULLIS_ADMIN_TOKEN: adminToken } })).code).toBe(0);
      expect((await cli(["--url", gatewayUrl, "roles", "list"], { env: { ...env, PORTCULLIS_ADMIN_TOKEN: adminToken } })).code).toBe(0);
      expect((await cli(["--profile", "elsewhere", "--url", gatewayUrl, "--token", adminToken, "roles", "list"], { env })).code).toBe(0);
      expect((await cli(["roles", "list"], { env })).code).toBe(0);
      expect((await cli(["--profile", "elsewhere", "roles", "list"], { env: { ...env, ELSEWHERE_TOKEN: "elsewhere-token" } })).code).toBe(0);
      expect(other.seen.map((r) => r.authorization)).toEqual(["Bearer elsewhere-token"]);
    } finally {
      await other.close();
    }
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

  it("prints each key as it is issued, so a later failure does not lose it (with --json too)", async () => {
    // Between the CLI and the gateway: passes everything through, but fails the second key issued
    // (a gateway error halfway through apply, after the first key exists).
    let issues = 0;
    const flaky = await localServer(async (req, body, res) => {
      if (req.method === "POST" && /^\/admin\/v1\/users\/[^/]+\/keys$/.test(req.url!) && ++issues % 2 === 0) {
        res.writeHead(503, { "content-type": "application/problem+json" }).end(JSON.stringify({ status: 503, detail: "Injected failure.", code: "INTERNAL" }));
        return;
      }
      const upstream = await fetch(`${gatewayUrl}${req.url}`, {
        method: req.method,
        headers: { authorization: req.headers.authorization ?? "", "content-type": req.headers["content-type"] ?? "application/json" },
        body: req.method === "GET" || req.method === "HEAD" ? undefined : body.toString("utf8"),
      });
      res.writeHead(upstream.status, { "content-type": upstream.headers.get("content-type") ?? "application/json" }).end(Buffer.from(await upstream.arrayBuffer()));
    });
    const env = { PORTCULLIS_URL: flaky.url };
    try {
      for (const json of [false, true]) {
        const a = uniqueName("apply-ka");
        const b = uniqueName("apply-kb");
        const file = await fileWith(JSON.stringify({ users: [{ name: a, keys: [{ name: "k1" }] }, { name: b, keys: [{ name: "k2" }] }] }));
        const r = await cli(["apply", file, "--yes", ...(json ? ["--json"] : [])], { env });
        expect(r.code).toBe(6);
        expect(r.stderr).toContain("Injected failure.");
        const [issued] = await cliJson(["keys", "list", a]);
        expect(issued).toMatchObject({ name: "k1", status: "active" });
        let key: string | undefined;
        if (json) {
          const out = JSON.parse(r.stdout);
          expect(out).toMatchObject({ applied: false, failed: { kind: "key", op: "create", name: `${b}/k2` }, done: 3, issuedKeys: [{ user: a, name: "k1", id: issued.id }] });
          key = out.issuedKeys[0].key;
        } else {
          key = new RegExp(`^\\s+${a}/k1\\s+${issued.id}\\s+(pcl_\\S+)$`, "m").exec(r.stdout)?.[1];
          expect(r.stdout).not.toContain("Applied.");
        }
        expect(key?.startsWith(issued.start)).toBe(true);
        expect(r.stderr).toContain(`Stopped at key ${b}/k2: 3 of 4 change(s) applied.`);
        // Applied again: the key exists, so it is not issued (nor printed) again; the failed one is.
        const again = await cliJson(["apply", file, "--yes"]);
        expect(again.issuedKeys.map((k: any) => `${k.user}/${k.name}`)).toEqual([`${b}/k2`]);
      }
    } finally {
      await flaky.close();
    }
  });

  it("refuses a key spec the gateway would refuse before applying anything", async () => {
    const a = uniqueName("apply-va");
    const b = uniqueName("apply-vb");
    const past = await fileWith(JSON.stringify({ users: [{ name: a, keys: [{ name: "a1" }] }, { name: b, keys: [{ name: "b1", expiresAt: "2001-01-01T00:00:00Z" }] }] }));
    const r = await cli(["apply", past, "--yes"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("users[1].keys[0].expiresAt: 2001-01-01T00:00:00Z has passed.");
    expect((await cli(["users", "show", a])).code).toBe(4);
    const bad = async (...keys: object[]) => {
      const r = await cli(["apply", await fileWith(JSON.stringify({ users: [{ name: a, keys }] })), "--yes"]);
      expect(r.code).toBe(2);
      return r.stderr;
    };
    expect(await bad({ name: "x", expiresAt: "next week" })).toContain("users[0].keys[0].expiresAt: must be an ISO date-time");
    expect(await bad({ name: "x", permissions: ["orders read"] })).toContain('users[0].keys[0].permissions: "orders read" is not a permission string');
    expect(await bad({ name: "x".repeat(101) })).toContain('users[0].keys[0]: "name" is longer than 100 characters.');
    expect(await bad({ name: "x" }, { name: "x" })).toContain(`users[0].keys[1]: key "x" is listed twice for ${a}.`);
    expect((await cli(["users", "show", a])).code).toBe(4);
  });

  it("refuses a user expiry that has passed before applying anything; one the gateway already holds is no change", async () => {
    const a = uniqueName("apply-ea");
    const b = uniqueName("apply-eb");
    const past = await fileWith(JSON.stringify({ users: [{ name: a }, { name: b, expiresAt: "2001-01-01T00:00:00Z" }] }));
    const r = await cli(["apply", past, "--yes"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`users[1] (${b}).expiresAt: 2001-01-01T00:00:00Z has passed.`);
    expect((await cli(["users", "show", a])).code).toBe(4);
    // A user whose expiry (set while ahead) has since passed: the same file applies as no change.
    // The passed expiry is written behind the API (which refuses to set one): no race with the clock.
    const user = await cliJson(["users", "create", b]);
    await d1Execute(inject("gatewayPersist"), `UPDATE proxy_users SET expires_at = ${Date.parse("2001-01-01T00:00:00Z")} WHERE id = '${user.id}'`);
    const file = await fileWith(JSON.stringify({ users: [{ name: b, expiresAt: "2001-01-01T00:00:00Z" }] }));
    const again = await cli(["apply", file, "--yes"]);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain("Plan: 0 to create, 0 to change, 0 to delete, 1 unchanged.");
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
