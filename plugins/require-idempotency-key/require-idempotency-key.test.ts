import { describe, expect, it } from "vitest";
import { expectProblem, originRecords, seedCaller, testGateway, unique } from "../../test/helpers";
import { authorize } from "../authorize";
import { keyAuth } from "../key-auth";
import { requireIdempotencyKey } from "./index";

const fetchGw = testGateway({
  plugins: [keyAuth(), authorize()],
  routes: [
    {
      name: "payments",
      path: "/payments/*",
      methods: ["GET", "POST", "PUT"],
      upstream: "echo",
      permission: "echo:write",
      plugins: [requireIdempotencyKey({ groups: ["partner"], maxLength: 64 })],
    },
  ],
});

describe("require-idempotency-key (example custom plugin)", () => {
  it("a partner's POST without the header is refused with the plugin's own code (428) and never forwarded", async () => {
    const { key } = await seedCaller({ permissions: ["echo:write"], group: "partner" });
    const marker = unique("idem-missing");
    const body = await expectProblem(await fetchGw(`/payments/${marker}`, { method: "POST", headers: { "x-api-key": key }, body: "{}" }), 428, "IDEMPOTENCY_KEY_REQUIRED");
    expect(body.title).toBe("An Idempotency-Key header is required");
    expect(await originRecords(marker)).toEqual([]);
  });

  it("an invalid key is a 400 IDEMPOTENCY_KEY_INVALID", async () => {
    const { key } = await seedCaller({ permissions: ["echo:write"], group: "partner" });
    const marker = unique("idem-bad");
    await expectProblem(await fetchGw(`/payments/${marker}`, { method: "POST", headers: { "x-api-key": key, "idempotency-key": "x".repeat(65) }, body: "{}" }), 400, "IDEMPOTENCY_KEY_INVALID");
    expect(await originRecords(marker)).toEqual([]);
  });

  it("with the header, the request is forwarded and the response names the key", async () => {
    const { key } = await seedCaller({ permissions: ["echo:write"], group: "partner" });
    const marker = unique("idem-ok");
    const res = await fetchGw(`/payments/${marker}`, { method: "POST", headers: { "x-api-key": key, "idempotency-key": "order-42-attempt" }, body: "{}" });
    expect(res.status).toBe(200);
    expect(res.headers.get("idempotency-key")).toBe("order-42-attempt");
    expect((await originRecords(marker))[0]!.headers["idempotency-key"]).toBe("order-42-attempt");
  });

  it("other groups, and methods not listed, pass untouched", async () => {
    const internal = await seedCaller({ permissions: ["echo:write"], group: "internal" });
    expect((await fetchGw(`/payments/${unique("m")}`, { method: "POST", headers: { "x-api-key": internal.key }, body: "{}" })).status).toBe(200);
    const partner = await seedCaller({ permissions: ["echo:write"], group: "partner" });
    expect((await fetchGw(`/payments/${unique("m")}`, { method: "PUT", headers: { "x-api-key": partner.key }, body: "{}" })).status).toBe(200);
    expect((await fetchGw(`/payments/${unique("m")}`, { headers: { "x-api-key": partner.key } })).status).toBe(200);
  });

  it("options are checked at load", () => {
    expect(requireIdempotencyKey({ maxLength: 4 }).configIssues?.[0]?.path).toEqual(["maxLength"]);
    // @ts-expect-error GET is not an unsafe method
    expect(requireIdempotencyKey({ methods: ["GET"] }).configIssues).toHaveLength(1);
  });
});

describe("require-idempotency-key: where in the chain", () => {
  it("with groups, a chain where it runs before every authenticator is refused at load (it would never see a group, so never apply)", async () => {
    const { defineGateway } = await import("../../worker/gateway/config");
    const { testUpstreams } = await import("../../test/fixtures/upstreams");
    const route = (plugins: Parameters<typeof defineGateway>[0]["routes"][number]["plugins"]) => ({ name: "pay", path: "/pay/*", methods: ["POST" as const], upstream: "echo", plugins });
    expect(() => defineGateway({ upstreams: testUpstreams, routes: [route([requireIdempotencyKey({ groups: ["partner"] }), keyAuth()])] })).toThrow(
      /gateway\.routes\[0\]\.plugins\[0\] \(route "pay", plugin "require-idempotency-key"\): reads the caller's identity, but runs before any authenticator/,
    );
    expect(() => defineGateway({ upstreams: testUpstreams, routes: [route([requireIdempotencyKey({ groups: ["partner"] })])] })).toThrow(/before any authenticator/);
    // Without groups it applies to every caller, identified or not: any place will do.
    expect(() => defineGateway({ upstreams: testUpstreams, routes: [route([requireIdempotencyKey(), keyAuth()])] })).not.toThrow();
    expect(() => defineGateway({ upstreams: testUpstreams, routes: [route([keyAuth(), requireIdempotencyKey({ groups: ["partner"] })])] })).not.toThrow();
  });
});
