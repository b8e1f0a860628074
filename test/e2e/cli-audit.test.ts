import { spawn } from "node:child_process";
import path from "node:path";
import { describe, expect, inject, it } from "vitest";
import { d1Execute } from "../../scripts/test-gateway.mjs";
import { cli, cliJson, proxy, uniqueName } from "./cli";

const BIN = path.resolve(import.meta.dirname, "../../bin/portcullis.mjs");
const hex = () => [...crypto.getRandomValues(new Uint8Array(8))].map((b) => b.toString(16).padStart(2, "0")).join("");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Writes request events straight into the gateway's D1, as a late audit flush would. */
const sql = (text: string) => d1Execute(inject("gatewayPersist"), text);

/** `audit tail -f --json` as a running process: the paths it has printed so far, and a way to stop it. */
function tailFollow(args: string[]) {
  const child = spawn(process.execPath, [BIN, "audit", "tail", "-f", "--interval", "1", "--json", ...args], {
    env: { PATH: process.env.PATH!, HOME: process.env.HOME!, PORTCULLIS_URL: inject("gatewayUrl"), PORTCULLIS_ADMIN_TOKEN: inject("adminToken"), PORTCULLIS_CONFIG: "/nonexistent" },
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  const paths = () => out.split("\n").filter(Boolean).map((l) => JSON.parse(l).path as string);
  return {
    paths,
    /** Waits until `n` events were printed (then one more poll, to catch duplicates), or times out. */
    async waitFor(n: number, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (paths().length < n && Date.now() < deadline) await sleep(200);
      await sleep(1500);
      if (err) throw new Error(err);
      return paths();
    },
    stop: () => child.kill(),
  };
}

/** Polls until `check` passes: audit events are written asynchronously (batched, via the queue). */
async function eventually<T>(fn: () => Promise<T>, check: (v: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = await fn();
  while (!check(v) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    v = await fn();
  }
  return v;
}

describe("portcullis audit and usage", () => {
  it("finds a user's requests, the admin changes, usage with a sparkline, and verifies the chains", async () => {
    await cli(["roles", "create", uniqueName("aud-role"), "--permission", "echo:read"]);
    const roles = await cliJson<Array<{ name: string }>>(["roles", "list"]);
    const role = roles.at(-1)!.name;
    const name = uniqueName("aud-user");
    const user = await cliJson(["users", "create", name, "--role", role]);
    const key = (await cli(["keys", "issue", name])).stdout.trim();
    for (let i = 0; i < 3; i++) expect((await proxy(`/echo/aud-${name}-${i}`, key)).status).toBe(200);
    // The role grants echo:read only: a write is refused (403) and audited as refused.
    const refused = await fetch(`${inject("gatewayUrl")}/echo-write/aud-${name}`, { method: "POST", headers: { authorization: `Bearer ${key}` } });
    expect(refused.status).toBe(403);

    const events = await eventually(
      () => cliJson<any[]>(["audit", "requests", "--user", name]),
      (rows) => rows.length >= 4,
    );
    expect(events.filter((e) => e.status === 200)).toHaveLength(3);
    expect(events.filter((e) => e.decision === "refused")).toMatchObject([{ status: 403, code: "FORBIDDEN" }]);
    expect(events.every((e) => e.userId === user.id)).toBe(true);
    expect(JSON.stringify(events)).not.toContain(key);
    // No limit touched these requests: filtered by a limit outcome, none are left.
    expect(await cliJson<any[]>(["audit", "requests", "--user", name, "--limit-outcome", "refused"])).toEqual([]);

    const table = await cli(["audit", "requests", "--user", name, "--status", "2xx"]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^TIME\s+METHOD\s+PATH\s+STATUS\s+DECISION\s+USER\s+MS\s+REQUEST ID$/m);
    expect(table.stdout).toContain(`/echo/aud-${name}-0`);

    const adminEvents = await cliJson<any[]>(["audit", "admin", "--target", user.id]);
    expect(adminEvents.map((e) => e.action)).toContain("user.create");
    expect(adminEvents.every((e) => e.actor === "admin-token")).toBe(true);

    const usage = await eventually(
      () => cliJson<any>(["usage", "--by", "user", "--value", user.id, "--granularity", "minute", "--since", "1h"]),
      (u) => u.data.reduce((n: number, d: any) => n + d.requests, 0) >= 3,
    );
    expect(usage.data.reduce((n: number, d: any) => n + d.status["2xx"], 0)).toBe(3);
    const human = await cli(["usage", "--by", "user", "--granularity", "minute", "--since", "1h"]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^${user.id}\\s+${name}\\s+4\\s+3\\s+1\\s+0\\s+`, "m"));
    // One block per minute of the hour: 60 (or 61 at a minute boundary), quiet minutes as ▁.
    expect(human.stdout).toMatch(/[▁▂▃▄▅▆▇█]{60,61}\n/);

    const exported = await cli(["audit", "export", "--log", "admin", "--since", "1h"]);
    expect(exported.code).toBe(0);
    const lines = exported.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.some((e) => e.targetId === user.id && e.action === "user.create")).toBe(true);

    const verified = await cli(["audit", "verify", "--log", "admin"]);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toMatch(/Verified \d+ rows/);

    const tail = await cli(["audit", "tail", "--user", name, "--since", "10m"]);
    expect(tail.code).toBe(0);
    expect(tail.stdout).toContain(`/echo/aud-${name}-2`);
  });

  it("finds a deleted user's request events by its id (the trail outlives the user)", async () => {
    const name = uniqueName("aud-gone");
    await cli(["roles", "create", `${name}-r`, "--permission", "echo:read"]);
    const user = await cliJson(["users", "create", name, "--role", `${name}-r`]);
    const key = (await cli(["keys", "issue", name])).stdout.trim();
    expect((await proxy(`/echo/aud-${name}`, key)).status).toBe(200);
    await eventually(
      () => cliJson<any[]>(["audit", "requests", "--user", user.id]),
      (rows) => rows.length >= 1,
    );
    expect((await cli(["users", "delete", name, "--yes"])).code).toBe(0);
    const after = await cli(["audit", "requests", "--user", user.id, "--json"]);
    expect(after.stderr).toBe("");
    expect(after.code).toBe(0);
    expect(JSON.parse(after.stdout).map((e: any) => e.path)).toEqual([`/echo/aud-${name}`]);
    // A name is only known while the user exists; an id that never existed matches nothing.
    expect((await cli(["audit", "requests", "--user", name])).code).toBe(4);
    expect(await cliJson(["audit", "requests", "--user", "usr_0000000000000000000000"])).toEqual([]);
  });

  it("tail -f shows events stored after newer ones (a late flush), and every event of a busy interval", async () => {
    const user = await cliJson(["users", "create", uniqueName("aud-tail")]);
    const chain = `tail-${hex()}`;
    const now = Date.now();
    const row = (seq: number, ts: number, p: string) => `('req_t${hex()}${seq}', '${chain}', ${seq}, ${ts}, '${user.id}', 'GET', '${p}', 'allowed', 200, 5)`;
    const insert = (...rows: string[]) => sql(`INSERT INTO request_events (id, chain, seq, ts, user_id, method, path, decision, status, latency_ms) VALUES ${rows.join(", ")}`);
    await insert(row(1, now, "/echo/first"));
    const tail = tailFollow(["--user", user.id]);
    try {
      expect(await tail.waitFor(1)).toEqual(["/echo/first"]);
      // Stored now, for a request received 3 s before the one already shown; then a newer one.
      await insert(row(2, now - 3000, "/echo/late"), row(3, now + 10, "/echo/after"));
      expect(await tail.waitFor(3)).toEqual(["/echo/first", "/echo/late", "/echo/after"]);
      // 600 events within one poll: more than one page (500) of the admin API.
      await sql(
        `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600) ` +
          `INSERT INTO request_events (id, chain, seq, ts, user_id, method, path, decision, status, latency_ms) ` +
          `SELECT 'req_b${hex()}' || i, '${chain}', 100 + i, ${now + 100} + i, '${user.id}', 'GET', '/echo/busy-' || i, 'allowed', 200, 5 FROM n`,
      );
      const all = await tail.waitFor(603);
      expect(all).toHaveLength(603);
      expect(all.slice(3)).toEqual(Array.from({ length: 600 }, (_, i) => `/echo/busy-${i + 1}`));
    } finally {
      tail.stop();
    }
  });

  it("verify exits 7 on a broken chain, with --json too", async () => {
    // A day long gone, so no other test's chain: one row whose hashes do not link.
    const day = "2001-01-01";
    await sql(`INSERT INTO request_events (id, chain, seq, ts, method, path, decision, status, latency_ms, prev_hash, hash) VALUES ('req_v${hex()}', '${day}', 1, ${Date.parse(day)}, 'GET', '/echo/forged', 'allowed', 200, 5, 'forged', 'forged')`);
    const human = await cli(["audit", "verify", "--chain", day]);
    expect(human.code).toBe(7);
    expect(human.stdout).toContain(`First broken link: ${day} seq 1`);
    expect(human.stderr).toContain(`Broken hash chain: ${day} seq 1`);
    const json = await cli(["audit", "verify", "--chain", day, "--json"]);
    expect(json.code).toBe(7);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, firstBroken: { chain: day, seq: 1 } });
  });
});
