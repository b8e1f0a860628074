import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { audit } from "../../plugins/audit";
import { authorize } from "../../plugins/authorize";
import { keyAuth } from "../../plugins/key-auth";
import { rateLimit } from "../../plugins/rate-limit";
import { createApp } from "../../worker/app";
import { definePlugin, z } from "../../worker/plugin-api";
import { defineGateway } from "../../worker/gateway/config";
import { eventsFor } from "../audit-helpers";
import { testUpstreams } from "../fixtures/upstreams";
import { expectProblem, json, ORIGIN_SECRET, originRecords, seedCaller, unique } from "../helpers";

/**
 * WebSocket routes (`websocket: true`): the handshake runs the route's whole chain (auth,
 * authorize, limits, audit), and only then is it forwarded, with the origin credential injected
 * and the client's own key and spoofable headers dropped, as for any request. The recording
 * origin (test/node/origin.ts) accepts `/__ws` handshakes, says hello with the headers it saw and
 * echoes each message.
 */
const rateName = unique("ws-rate");
/** Replaces the response with a copy of it (as docs/plugins.md says a plugin may), plus a header. */
const copier = definePlugin({
  name: "copier",
  config: z.strictObject({}),
  create: () =>
    async function copier(c, next) {
      await next();
      const copy = new Response(c.res.body, c.res);
      copy.headers.set("x-copied", "1");
      c.res = undefined;
      c.res = copy;
    },
});
const app = createApp(
  defineGateway({
    upstreams: testUpstreams,
    plugins: [audit({ sink: "d1", flushIntervalMs: 20 }), keyAuth(), authorize()],
    routes: [
      { name: "ws", path: "/ws/*", methods: ["GET"], upstream: "echo", permission: "echo:read", websocket: true },
      { name: "ws-limited", path: "/ws-limited/*", methods: ["GET"], upstream: "echo", permission: "echo:read", websocket: true, plugins: [rateLimit({ name: rateName, limit: 1, window: "1h" })] },
      { name: "plain", path: "/plain/*", methods: ["GET"], upstream: "echo", permission: "echo:read" },
      { name: "ws-copied", path: "/ws-copied/*", methods: ["GET"], upstream: "echo", permission: "echo:read", websocket: true, plugins: [copier({})] },
    ],
  }),
);

async function handshake(path: string, headers: Record<string, string>) {
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`https://gateway.test${path}`, { headers: { upgrade: "websocket", ...headers } }), env, ctx);
  return { res, settled: () => waitOnExecutionContext(ctx) };
}

/** Accepts the client end and collects what arrives, in order. */
function open(ws: WebSocket) {
  const got: string[] = [];
  const waiters: Array<() => void> = [];
  ws.accept();
  ws.addEventListener("message", (e) => {
    got.push(typeof e.data === "string" ? e.data : "<binary>");
    waiters.splice(0).forEach((w) => w());
  });
  const next = async (n: number) => {
    const deadline = Date.now() + 5_000;
    while (got.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${got.length} of ${n} messages arrived`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 100);
      });
    }
    return got[n - 1]!;
  };
  return { got, next };
}

describe("a route with websocket: true", () => {
  it("forwards an authorized handshake with the origin credential, then messages flow both ways", async () => {
    const { key, user, keyId } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("ws");
    const { res, settled } = await handshake(`/ws/__ws/${marker}?x=1`, {
      authorization: `Bearer ${key}`,
      "sec-websocket-protocol": "chat.v2, chat.v1",
      "x-forwarded-user": "forged-admin",
    });
    expect(res.status).toBe(101);
    expect(res.webSocket).toBeTruthy();
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
    // The subprotocol the origin chose reaches the client.
    expect(res.headers.get("sec-websocket-protocol")).toBe("chat.v2");

    const client = open(res.webSocket!);
    const hello = JSON.parse(await client.next(1));
    expect(hello.hello).toBe(`/__ws/${marker}?x=1`);
    expect(hello.protocol).toBe("chat.v2");
    // What the origin's handshake carried: the injected credential and the caller's identity,
    // never the client's key or a forged forwarding header.
    expect(hello.headers.authorization).toBe(`Bearer ${ORIGIN_SECRET}`);
    expect(hello.headers["x-portcullis-user-id"]).toBe(user.id);
    expect(hello.headers["x-portcullis-key-id"]).toBe(keyId);
    expect(hello.headers["x-forwarded-user"]).toBeUndefined();
    expect(JSON.stringify(hello.headers)).not.toContain(key);

    res.webSocket!.send("ping 1");
    expect(await client.next(2)).toBe("echo:ping 1");
    res.webSocket!.send("ping 2");
    expect(await client.next(3)).toBe("echo:ping 2");
    res.webSocket!.close(1000, "done");
    await settled();

    // The handshake is audited like any request: allowed, 101, the caller known.
    const [event] = await eventsFor(marker, 1);
    expect(event).toMatchObject({ route: "ws", decision: "allowed", status: 101, origin_status: 101, user_id: user.id, key_id: keyId });
  });

  it("a handshake without a valid key is 401 and never reaches the origin", async () => {
    const marker = unique("ws-anon");
    const { res } = await handshake(`/ws/__ws/${marker}`, {});
    expect(res.webSocket).toBeNull();
    await expectProblem(res, 401, "KEY_INVALID");
    const forbidden = await seedCaller({ permissions: ["other:read"] });
    const denied = await handshake(`/ws/__ws/${marker}`, { authorization: `Bearer ${forbidden.key}` });
    await expectProblem(denied.res, 403, "FORBIDDEN");
    expect(await originRecords(marker)).toEqual([]);
  });

  it("a handshake is a request to the route's rate limit: past it, 429 and the origin sees no handshake", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("ws-rl");
    const first = await handshake(`/ws-limited/__ws/${marker}/1`, { authorization: `Bearer ${key}` });
    expect(first.res.status).toBe(101);
    expect(first.res.headers.get("ratelimit-remaining")).toBe("0");
    const client = open(first.res.webSocket!);
    await client.next(1);
    first.res.webSocket!.close(1000);
    const second = await handshake(`/ws-limited/__ws/${marker}/2`, { authorization: `Bearer ${key}` });
    await expectProblem(second.res, 429, "RATE_LIMITED");
    expect((await originRecords(marker)).map((r) => r.url)).toEqual([`/__ws/${marker}/1`]);
  });

  it("a plugin that copies the 101 (new Response(c.res.body, c.res)) keeps the socket", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const { res } = await handshake(`/ws-copied/__ws/${unique("ws-copy")}`, { authorization: `Bearer ${key}` });
    expect(res.status).toBe(101);
    expect(res.headers.get("x-copied")).toBe("1");
    const client = open(res.webSocket!);
    await client.next(1);
    res.webSocket!.send("still here");
    expect(await client.next(2)).toBe("echo:still here");
    res.webSocket!.close(1000);
  });

  it("an origin that refuses the upgrade answers the client as a plain response", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("ws-refused");
    const { res } = await handshake(`/ws/__ws-refuse/${marker}`, { authorization: `Bearer ${key}` });
    expect(res.webSocket).toBeNull();
    expect(res.status).toBe(403);
    expect(await res.text()).toBe("refused");
    expect(await originRecords(marker)).toHaveLength(1);
  });
});

describe("a route without websocket", () => {
  it("drops Upgrade like any hop-by-hop header: the origin gets a plain GET and the client its answer", async () => {
    const { key } = await seedCaller({ permissions: ["echo:read"] });
    const marker = unique("ws-plain");
    const { res } = await handshake(`/plain/${marker}`, { authorization: `Bearer ${key}` });
    expect(res.status).toBe(200);
    expect(res.webSocket).toBeNull();
    const echoed = await json(res);
    expect(echoed.headers.upgrade).toBeUndefined();
    const [seen] = await originRecords(marker);
    expect(seen!.headers.upgrade).toBeUndefined();
  });
});

describe("config", () => {
  it("websocket: true on a route without GET fails at load, naming the route and field", () => {
    expect(() =>
      defineGateway({ upstreams: testUpstreams, routes: [{ name: "ws-post", path: "/ws-post/*", methods: ["POST"], upstream: "echo", websocket: true }] }),
    ).toThrow(/gateway\.routes\[0\]\.websocket \(route "ws-post"\): a WebSocket handshake is a GET/);
  });
});
