import { createHash } from "node:crypto";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDemoOrigin } from "../../scripts/demo-origin.mjs";

/** The `npm start` demo origin shows what the gateway forwarded without handing the origin secret to the caller. */
describe("demo origin", () => {
  let server: Awaited<ReturnType<typeof startDemoOrigin>>;
  let base: string;
  beforeAll(async () => {
    server = await startDemoOrigin(0);
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const fingerprint = (s: string) => createHash("sha256").update(s).digest("hex").slice(0, 8);

  it("echoes the request, credentials only as a fingerprint of their value", async () => {
    const secret = "demo-origin-secret-0123456789abcdef";
    const res = await fetch(`${base}/orders?limit=2&tag=a&tag=b`, {
      method: "POST",
      headers: { authorization: `Bearer ${secret}`, "x-api-key": "raw-key-value-42", "x-portcullis-user-name": "acme-partner", "content-type": "text/plain" },
      body: "hello",
    });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).not.toContain(secret);
    expect(text).not.toContain("raw-key-value-42");
    const echo = JSON.parse(text);
    expect(echo).toMatchObject({ method: "POST", path: "/orders", query: { limit: "2", tag: ["a", "b"] }, body: "hello" });
    expect(echo.headers.authorization).toBe(`Bearer [redacted sha256:${fingerprint(secret)}]`);
    expect(echo.headers["x-api-key"]).toBe(`[redacted sha256:${fingerprint("raw-key-value-42")}]`);
    expect(echo.headers["x-portcullis-user-name"]).toBe("acme-partner");
  });
});
