import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { unstable_startWorker } from "wrangler";
import { startUpstashBridge } from "../../scripts/upstash-bridge.mjs";
import { clearOfHourEdge } from "../window-edges";
import { startRecordingOrigin } from "./origin";

/**
 * Limits across separately started gateway processes (each its own workerd, its own D1), and
 * across a restart. Runs in Node: it starts the processes with wrangler's unstable_startWorker.
 */
const root = path.resolve(import.meta.dirname, "../..");
const ADMIN_TOKEN = "process-test-admin-token-0123456789";
const UPSTASH_TOKEN = "process-test-upstash-token";

/** migrations/*.sql as D1 migrations: drizzle-kit separates statements with `--> statement-breakpoint`. */
function readMigrations() {
  const dir = path.join(root, "migrations");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort()
    .map((name) => ({
      name,
      queries: readFileSync(path.join(dir, name), "utf8")
        .split("--> statement-breakpoint")
        .map((q) => q.trim())
        .filter(Boolean),
    }));
}

type Gateway = Awaited<ReturnType<typeof startGateway>>;

interface StartOptions {
  /** The dev registry directory (default: the process's own persist directory). */
  registry?: string;
  /** Bind LIMITER to this worker's LimiterDurableObject instead of an own namespace. */
  limiterFrom?: string;
}

async function startGateway(name: string, persist: string, env: { originUrl: string; upstashUrl: string }, opts: StartOptions = {}) {
  const worker = await unstable_startWorker({
    name,
    config: path.join(root, "wrangler.toml"),
    entrypoint: path.join(root, "test/fixtures/process-worker.ts"),
    bindings: {
      ADMIN_TOKEN: { type: "plain_text", value: ADMIN_TOKEN },
      TEST_ORIGIN_URL: { type: "plain_text", value: env.originUrl },
      TEST_ORIGIN_PREFIXED_URL: { type: "plain_text", value: `${env.originUrl}/base/v1` },
      ECHO_ORIGIN_TOKEN: { type: "plain_text", value: "origin-secret" },
      UPSTASH_TEST_URL: { type: "plain_text", value: env.upstashUrl },
      UPSTASH_TEST_TOKEN: { type: "plain_text", value: UPSTASH_TOKEN },
      TEST_MIGRATIONS: { type: "json", value: readMigrations() },
      ...(opts.limiterFrom ? { LIMITER: { type: "durable_object_namespace", class_name: "LimiterDurableObject", script_name: opts.limiterFrom } } : {}),
    },
    dev: { server: { hostname: "127.0.0.1", port: 0 }, inspector: false, persist, logLevel: "error", watch: false, registry: opts.registry ?? persist },
  });
  await worker.ready;
  const base = await worker.url;
  const call = (p: string, init: RequestInit = {}) => fetch(new URL(p, base), { redirect: "manual", ...init });
  const migrated = await call("/__test/migrate", { method: "POST" });
  expect(migrated.status).toBe(200);
  await migrated.text();
  const admin = async (method: string, p: string, body?: unknown) => {
    const res = await call(`/admin/v1${p}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as any };
  };
  /** A user (in `group`) with a key that may call every test route. */
  const caller = async (group: string) => {
    const role = await admin("POST", "/roles", { name: `r-${Math.random().toString(36).slice(2, 10)}`, permissions: ["echo:*"] });
    const user = await admin("POST", "/users", { name: `u-${Math.random().toString(36).slice(2, 10)}`, roles: [role.body.name], group });
    const key = await admin("POST", `/users/${user.body.id}/keys`, {});
    expect(key.status).toBe(201);
    return { userId: user.body.id as string, key: key.body.key as string };
  };
  const get = async (p: string, key: string) => {
    const res = await call(p, { headers: { authorization: `Bearer ${key}` } });
    await res.arrayBuffer();
    return res.status;
  };
  return { worker, call, admin, caller, get, dispose: () => worker.dispose() };
}

describe("limits across gateway processes", () => {
  let origin: Awaited<ReturnType<typeof startRecordingOrigin>>;
  let bridge: Awaited<ReturnType<typeof startUpstashBridge>>;
  let dirs: string[] = [];
  let running: Gateway[] = [];
  let env: { originUrl: string; upstashUrl: string };
  const records = async (marker: string) => ((await (await fetch(`${env.originUrl}/__records?contains=${marker}`)).json()) as unknown[]).length;

  beforeAll(async () => {
    origin = await startRecordingOrigin();
    bridge = await startUpstashBridge({ token: UPSTASH_TOKEN, redisUrl: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" });
    env = { originUrl: `http://127.0.0.1:${origin.port}`, upstashUrl: bridge.url };
    dirs = [mkdtempSync(path.join(os.tmpdir(), "pcl-a-")), mkdtempSync(path.join(os.tmpdir(), "pcl-b-"))];
  });

  // Both tests count (a 1 h window, monthly quotas): never across an hour edge (test/window-edges.ts).
  beforeEach(() => clearOfHourEdge(120_000), 130_000);

  afterAll(async () => {
    for (const g of running) await g.dispose().catch(() => {});
    await bridge?.close();
    await new Promise((r) => origin?.server.close(() => r(undefined)));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /**
   * 4N concurrent requests from one group's users, half through each process, on `route` (N per
   * group, leases of up to 5): together the two processes admit no more than N.
   */
  async function expectSharedLimit(a: Gateway, b: Gateway, route: string) {
    // Each process has its own D1, so each has its own user; the limit counts by group, shared.
    const group = `grp-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    const [ca, cb] = await Promise.all([a.caller(group), b.caller(group)]);
    // Warm each process's key cache so the burst is about the limiter.
    expect(await a.get(`/echo/warm`, ca.key)).toBe(200);
    expect(await b.get(`/echo/warm`, cb.key)).toBe(200);
    const marker = `${route}-${Date.now().toString(36)}`;
    const N = 20;
    const statuses = await Promise.all(
      Array.from({ length: 4 * N }, (_, i) => (i % 2 === 0 ? a.get(`/${route}/${marker}/${i}`, ca.key) : b.get(`/${route}/${marker}/${i}`, cb.key))),
    );
    const admitted = statuses.filter((s) => s === 200).length;
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    expect(admitted).toBeLessThanOrEqual(N);
    // Leases a process holds unspent are the only loss: at most one lease (≤ 5) per process.
    expect(admitted).toBeGreaterThanOrEqual(N - 2 * 5);
    expect(await records(marker)).toBe(admitted);
    // Both processes took part.
    expect(statuses.filter((s, i) => s === 200 && i % 2 === 0).length).toBeGreaterThan(0);
    expect(statuses.filter((s, i) => s === 200 && i % 2 === 1).length).toBeGreaterThan(0);
  }

  it("two gateway processes sharing the Upstash backend together admit no more than N", async () => {
    const [a, b] = await Promise.all([startGateway("portcullis-a", dirs[0]!, env), startGateway("portcullis-b", dirs[1]!, env)]);
    running.push(a, b);
    await expectSharedLimit(a, b, "shared-up");
  });

  // In production every isolate of a deployment shares its Durable Object namespace. Locally, two
  // separately started processes can share one the way two `wrangler dev` sessions do: through
  // wrangler's dev registry, the second binding LIMITER to the first one's class (`script_name`).
  // Without that binding each process counts alone and this test admits 2N.
  it("two gateway processes sharing one Durable Object namespace together admit no more than N", async () => {
    const [registry, dirC, dirD] = ["pcl-reg-", "pcl-c-", "pcl-d-"].map((p) => mkdtempSync(path.join(os.tmpdir(), p))) as [string, string, string];
    dirs.push(registry, dirC, dirD);
    // The owner of the namespace registers first, so the second process finds it.
    const c = await startGateway("portcullis-c", dirC, env, { registry });
    running.push(c);
    const d = await startGateway("portcullis-d", dirD, env, { registry, limiterFrom: "portcullis-c" });
    running.push(d);
    await expectSharedLimit(c, d, "shared-do");
    for (const g of [d, c]) await g.dispose();
    running = running.filter((g) => g !== c && g !== d);
  });

  it("quota counts survive a gateway restart (Durable Object and Upstash backends)", async () => {
    let a = running[0] ?? (await startGateway("portcullis-a", dirs[0]!, env));
    const { key, userId } = await a.caller(`grp-restart`);
    const marker = `restart-${Date.now().toString(36)}`;
    for (const route of ["quota-do", "quota-up"]) {
      for (let i = 0; i < 3; i++) expect(await a.get(`/${route}/${marker}`, key)).toBe(200);
    }
    await a.dispose();
    running = running.filter((g) => g !== a);
    a = await startGateway("portcullis-a", dirs[0]!, env);
    running.push(a);
    for (const route of ["quota-do", "quota-up"]) {
      expect(await a.get(`/${route}/${marker}`, key)).toBe(200);
      expect(await a.get(`/${route}/${marker}`, key)).toBe(200);
      expect(await a.get(`/${route}/${marker}`, key)).toBe(429);
    }
    expect(await records(marker)).toBe(10);
    const status = await a.admin("GET", `/users/${userId}/limits/status`);
    const byName = Object.fromEntries((status.body.limits as { name: string; used: number }[]).map((l) => [l.name, l.used]));
    expect(byName).toMatchObject({ monthly: 5, "monthly-up": 5 });
  });
});
