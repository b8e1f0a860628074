import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";

/**
 * An origin that misbehaves on purpose, over raw TCP so the faults are real socket events:
 *
 * - `/hang/…`        reads the request and never answers (the gateway must time out: 504)
 * - `/reset/…`       reads the request, then resets the connection (RST) before any byte: 502
 * - `/reset-body/…`  sends 200 headers promising 100 000 bytes, 1 000 of them, then resets
 * - `/drip/…`        sends 200 headers at once, then one body byte every 200 ms (slowloris origin)
 * - `/stall-body/…`  sends 200 headers promising 100 000 bytes, 1 000 of them, then nothing (the
 *                    connection stays open); its record's `closedAt` says when the peer closed it
 * - `/big/<bytes>/…` sends a 200 with that many body bytes (a huge origin response)
 *
 * Every request line is recorded; a control server answers `GET /?contains=X` with the
 * recorded requests whose target contains X, so tests can count exactly how many arrived.
 */
export async function startFaultOrigin(): Promise<{ port: number; controlPort: number; close: () => Promise<void> }> {
  const records: Array<{ method: string; target: string; at: number; closedAt?: number }> = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let head = "";
    socket.on("data", (chunk) => {
      if (head.includes("\r\n\r\n")) return; // body bytes (if any) are not needed
      head += chunk.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      const [method = "", target = ""] = head.slice(0, head.indexOf("\r\n")).split(" ");
      const record: (typeof records)[number] = { method, target, at: Date.now() };
      records.push(record);
      socket.on("close", () => (record.closedAt = Date.now()));
      if (target.startsWith("/hang/")) return;
      if (target.startsWith("/reset/")) return void socket.resetAndDestroy();
      if (target.startsWith("/reset-body/")) {
        socket.write("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\n");
        socket.write(Buffer.alloc(1000, 0x61), () => {
          const t = setTimeout(() => socket.resetAndDestroy(), 50);
          timers.add(t);
        });
        return;
      }
      if (target.startsWith("/stall-body/")) {
        socket.write("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\n");
        socket.write(Buffer.alloc(1000, 0x61));
        return;
      }
      if (target.startsWith("/drip/")) {
        socket.write("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n");
        const t = setInterval(() => (socket.destroyed ? clearInterval(t) : socket.write("a")), 200);
        timers.add(t);
        return;
      }
      const big = /^\/big\/(\d+)\//.exec(target);
      if (big) {
        const size = Number(big[1]);
        socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: ${size}\r\nconnection: close\r\n\r\n`);
        const chunk = Buffer.alloc(64 * 1024, 0x62);
        let left = size;
        const pump = () => {
          while (left > 0) {
            const n = Math.min(left, chunk.length);
            left -= n;
            if (!socket.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void socket.once("drain", pump);
          }
          socket.end();
        };
        return pump();
      }
      socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    });
  });
  const control: HttpServer = createHttpServer((req, res) => {
    const contains = new URL(req.url ?? "/", "http://x").searchParams.get("contains") ?? "";
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(records.filter((r) => r.target.includes(contains))));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  await new Promise<void>((r) => control.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as AddressInfo).port,
    controlPort: (control.address() as AddressInfo).port,
    close: async () => {
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
      await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => control.close(r))]);
    },
  };
}
