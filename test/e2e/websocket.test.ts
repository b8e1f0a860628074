import { describe, expect, inject, it } from "vitest";
import WebSocket from "ws";
import { cli, cliJson, uniqueName } from "./cli";

/**
 * A WebSocket through the gateway over real sockets: a client on 127.0.0.1, workerd's HTTP
 * server answering the 101, the recording origin on the far side (test/node/origin.ts: a hello
 * with the handshake's headers, then an echo). test/integration/websocket.test.ts covers the
 * chain's decisions inside workerd; this one, the wire.
 */
const wsUrl = (path: string) => `${inject("gatewayUrl").replace(/^http/, "ws")}${path}`;

async function caller() {
  const role = uniqueName("ws-role");
  expect((await cli(["roles", "create", role, "--permission", "echo:read"])).code).toBe(0);
  const user = await cliJson(["users", "create", uniqueName("ws-user"), "--role", role]);
  // The key alone on stdout.
  const issued = await cli(["keys", "issue", user.name]);
  expect(issued.code).toBe(0);
  return issued.stdout.trim();
}

/** Opens a socket and resolves with its first message, or rejects with the HTTP status a refused handshake got. */
function connect(path: string, headers: Record<string, string>) {
  const ws = new WebSocket(wsUrl(path), ["chat.v1"], { headers });
  const messages: string[] = [];
  const arrived: Array<() => void> = [];
  ws.on("message", (data) => {
    messages.push(data.toString());
    arrived.splice(0).forEach((f) => f());
  });
  const opened = new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d));
      res.on("end", () => reject(Object.assign(new Error(`handshake refused: ${res.statusCode}`), { status: res.statusCode, body, headers: res.headers })));
    });
    ws.once("error", reject);
  });
  const nth = async (n: number) => {
    const deadline = Date.now() + 5_000;
    while (messages.length < n) {
      if (Date.now() > deadline) throw new Error(`only ${messages.length} of ${n} messages`);
      await new Promise<void>((r) => {
        arrived.push(r);
        setTimeout(r, 100);
      });
    }
    return messages[n - 1]!;
  };
  return { ws, opened, nth };
}

describe("a WebSocket route over the wire", () => {
  it("opens with a valid key: the origin got the injected credential, not the key; messages echo both ways", async () => {
    const key = await caller();
    const { ws, opened, nth } = connect(`/ws-echo/__ws/${uniqueName("wire")}`, { authorization: `Bearer ${key}` });
    await opened;
    expect(ws.protocol).toBe("chat.v1");
    const hello = JSON.parse(await nth(1));
    expect(hello.headers.authorization).toBe("Bearer origin-secret-value-7f3a9c");
    expect(JSON.stringify(hello.headers)).not.toContain(key);
    ws.send("over the wire");
    expect(await nth(2)).toBe("echo:over the wire");
    ws.close(1000);
  });

  it("a handshake without a key is refused with the 401 problem; no socket opens", async () => {
    const { opened } = connect(`/ws-echo/__ws/${uniqueName("anon")}`, {});
    const err = (await opened.then(
      () => null,
      (e: unknown) => e,
    )) as { status: number; body: string; headers: Record<string, string> } | null;
    expect(err?.status).toBe(401);
    expect(err!.headers["content-type"]).toContain("application/problem+json");
    expect(JSON.parse(err!.body)).toMatchObject({ code: "KEY_INVALID" });
  });
});
