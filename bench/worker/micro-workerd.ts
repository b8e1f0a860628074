import { ORIGIN_BODY } from "../lib/body.mjs";
import { stubD1 } from "../lib/stub-d1.mjs";
import { bareApp, floorApp, gatewayApps, memoryLimiterNamespace, warmKeys, type App } from "./micro-apps";

/**
 * The per-plugin micro-benchmark inside workerd (BENCH_SCENARIO "micro"; bench/micro-workerd.mjs
 * drives it): the same chains as bench/micro.mjs runs in Node — the driver, bare, floor, the
 * gateway core and the default pipeline grown one plugin at a time — called through app.fetch in
 * a loop with the origin stubbed and the key cache warm, in the runtime the targets are judged on
 * (workerd's C++ Headers, Request, Response and timers, not undici's JavaScript ones).
 *
 * `GET /__micro?chain=NAME&n=N` runs N requests through one chain and answers when done. Timing
 * is the harness's: workerd's clocks stand still while JavaScript runs (a Spectre mitigation),
 * so it reads the process's CPU time from /proc around each call instead.
 */
const ORIGIN = "http://origin.bench";
const originHeaders = { "content-type": "application/json", "content-length": String(new TextEncoder().encode(ORIGIN_BODY).byteLength) };

interface Chain {
  name: string;
  /** A further plugin's chain names the chain its step is measured from (see microChains). */
  onTopOf?: string;
  app: App;
}

let chains: Map<string, Chain> | undefined;
let keys: string[] = [];
let k = 0;
let env: Record<string, unknown>;
const ctx = { waitUntil: (p: Promise<unknown>) => void Promise.resolve(p).catch(() => {}), passThroughOnException() {}, props: {} } as unknown as ExecutionContext;

async function setUp(bindings: Record<string, unknown>): Promise<Map<string, Chain>> {
  // The origin answers at once from this isolate; anything else would be a bug of the benchmark.
  const realFetch = globalThis.fetch;
  globalThis.fetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    if (url === "" || url.startsWith(ORIGIN)) return new Response(ORIGIN_BODY, { status: 200, headers: originHeaders });
    return realFetch(input, init);
  }) as typeof fetch;
  env = {
    ...bindings,
    DB: stubD1(),
    // The rate-limit step's backend: the harness binds the real Durable Object (workerd will not
    // construct one from JavaScript); the in-memory namespace serves a run without it.
    LIMITER: bindings.LIMITER ?? memoryLimiterNamespace(),
    AUDIT_QUEUE: { send: async () => {}, sendBatch: async () => {} },
    ADMIN_TOKEN: "micro-admin-token-0123456789",
    ORIGIN_TOKEN: "micro-origin-secret",
    KEY_CACHE_TTL_SECONDS: "60",
    KEY_NEGATIVE_CACHE_TTL_SECONDS: "2",
  };
  keys = await warmKeys(1000, 3_600_000);
  const list: Chain[] = [
    { name: "driver", app: { fetch: async () => globalThis.fetch("") } },
    { name: "bare", app: bareApp() },
    { name: "floor", app: floorApp() },
    ...gatewayApps(),
  ];
  return new Map(list.map((c) => [c.name, c]));
}

async function one(app: App): Promise<void> {
  const req = new Request("http://gw.bench/api/orders/42", { headers: { authorization: `Bearer ${keys[k++ % keys.length]}`, accept: "application/json", "user-agent": "bench" } });
  const res = await app.fetch(req, env as never, ctx);
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
  await res.arrayBuffer();
}

export async function microFetch(req: Request, bindings: Record<string, unknown>): Promise<Response> {
  chains ??= await setUp(bindings);
  const url = new URL(req.url);
  if (url.pathname === "/__micro/chains") return Response.json([...chains.values()].map(({ name, onTopOf }) => ({ name, onTopOf })));
  const chain = chains.get(url.searchParams.get("chain") ?? "");
  if (!chain) return Response.json({ error: `no chain; chains: ${[...chains.keys()].join(", ")}` }, { status: 404 });
  const n = Number(url.searchParams.get("n") ?? "1000");
  for (let i = 0; i < n; i++) {
    await one(chain.app);
    // Let timers (the audit plugin's flush) run now and then, as separate requests would.
    if (i % 500 === 499) await new Promise((r) => setTimeout(r, 0));
  }
  return Response.json({ chain: chain.name, n });
}
