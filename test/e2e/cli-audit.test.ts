import { describe, expect, inject, it } from "vitest";
import { cli, cliJson, proxy, uniqueName } from "./cli";

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
});
