import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ADMIN, expectProblem, json, originRecords, ORIGIN_SECRET, seedCaller, testGateway, unique } from "../../test/helpers";
import { createDb } from "../../worker/db";
import { putSecret } from "../../worker/services/secrets";
import { authorize } from "../authorize";
import { keyAuth } from "../key-auth";
import { headers } from "./index";

const S = unique("HDR").replace(/[^A-Za-z0-9_]/g, "_");
const MISSING = `${S}_MISSING`;
const BAD = `${S}_BAD`;

const fetchGw = testGateway({
  upstreams: {
    echo: { url: "http://127.0.0.1:9", urlFromEnv: "TEST_ORIGIN_URL", credential: { header: "Authorization", prefix: "Bearer ", fromEnv: "ECHO_ORIGIN_TOKEN" } },
    // No upstream credential: the headers plugin injects the origin's token itself.
    bare: { url: "http://127.0.0.1:9", urlFromEnv: "TEST_ORIGIN_URL" },
  },
  plugins: [keyAuth(), authorize()],
  routes: [
    {
      name: "hdr",
      path: "/hdr/*",
      upstream: "bare",
      permission: "echo:read",
      plugins: [
        headers({
          request: {
            remove: ["x-drop-me"],
            rename: { "x-old": "x-new" },
            set: { "x-api-token": "Token {secret:" + S + "}", "x-user": "{proxyUser.id}/{proxyUser.name}", "x-group": "{proxyUser.group}", "x-rid": "{requestId}", "x-route": "{route.name}@{upstream.name}" },
            add: { "x-multi": "from-gateway" },
          },
          response: { remove: ["x-origin"], rename: { "content-type": "x-original-content-type" }, set: { "x-served-by": "portcullis {route.name}" } },
        }),
      ],
    },
    { name: "hdr-missing", path: "/hdr-missing/*", upstream: "bare", permission: "echo:read", plugins: [headers({ request: { set: { "x-api-token": `{secret:${MISSING}}` } } })] },
    { name: "hdr-bad", path: "/hdr-bad/*", upstream: "bare", permission: "echo:read", plugins: [headers({ request: { set: { "x-api-token": `{secret:${BAD}}` } } })] },
    { name: "hdr-leak", path: "/hdr-leak/*", upstream: "echo", permission: "echo:read", plugins: [headers({ request: { set: { "x-api-token": `{secret:${S}}` } } })] },
  ],
});

const admin = (method: string, path: string, body?: unknown) =>
  fetchGw(`/admin/v1${path}`, { method, headers: { ...ADMIN, "content-type": "application/json" }, ...(body ? { body: JSON.stringify(body) } : {}) });

describe("headers", () => {
  it("sets, adds, removes and renames request headers with templates and secrets", async () => {
    expect((await admin("PUT", `/secrets/${S}`, { value: "global-origin-token-1" })).status).toBe(200);
    const { key, user } = await seedCaller({ group: "partner" });
    const marker = unique("hdr");
    const res = await fetchGw(`/hdr/${marker}`, { headers: { "x-api-key": key, "x-drop-me": "1", "x-old": "moved", "x-multi": "from-client", "x-api-token": "client-forged" } });
    expect(res.status).toBe(200);
    const [rec] = await originRecords(marker);
    expect(rec!.headers).toMatchObject({
      "x-api-token": "Token global-origin-token-1",
      "x-user": `${user.id}/${user.name}`,
      "x-group": "partner",
      "x-rid": res.headers.get("x-request-id"),
      "x-route": "hdr@bare",
      "x-new": "moved",
      "x-multi": "from-client, from-gateway",
    });
    expect(rec!.headers["x-drop-me"]).toBeUndefined();
    expect(rec!.headers["x-old"]).toBeUndefined();
    // Response edits: removed, renamed, set.
    expect(res.headers.get("x-origin")).toBeNull();
    expect(res.headers.get("x-original-content-type")).toBe("application/json");
    expect(res.headers.get("content-type")).toBeNull();
    expect(res.headers.get("x-served-by")).toBe("portcullis hdr");
  });

  it("a header whose template value is absent (no group) is omitted, not sent half-rendered", async () => {
    await admin("PUT", `/secrets/${S}`, { value: "global-origin-token-1" });
    const { key } = await seedCaller();
    const marker = unique("hdr-nogroup");
    expect((await fetchGw(`/hdr/${marker}`, { headers: { "x-api-key": key, "x-group": "forged" } })).status).toBe(200);
    expect((await originRecords(marker))[0]!.headers["x-group"]).toBeUndefined();
  });

  it("user-bound beats group-bound beats global, and a rotation takes effect without a redeploy", async () => {
    await admin("PUT", `/secrets/${S}`, { value: "global-origin-token-1" });
    const alice = await seedCaller({ group: "gold" });
    const bob = await seedCaller({ group: "gold" });
    const carol = await seedCaller({ group: "silver" });
    expect((await admin("PUT", `/secrets/${S}`, { value: "gold-token", group: "gold" })).status).toBe(200);
    expect((await admin("PUT", `/secrets/${S}`, { value: "alice-token", userId: alice.user.id })).status).toBe(200);
    const seen = async (key: string) => {
      const marker = unique("hdr-bind");
      expect((await fetchGw(`/hdr/${marker}`, { headers: { "x-api-key": key } })).status).toBe(200);
      return (await originRecords(marker))[0]!.headers["x-api-token"];
    };
    expect(await seen(alice.key)).toBe("Token alice-token");
    expect(await seen(bob.key)).toBe("Token gold-token");
    expect(await seen(carol.key)).toBe("Token global-origin-token-1");
    expect((await json(await admin("PUT", `/secrets/${S}`, { value: "gold-token-v2", group: "gold" }))).version).toBe(2);
    expect(await seen(bob.key)).toBe("Token gold-token-v2");
    expect((await admin("DELETE", `/secrets/${S}?group=gold`)).status).toBe(204);
    expect(await seen(bob.key)).toBe("Token global-origin-token-1");
  });

  it("a missing secret is a 500 and nothing is forwarded", async () => {
    const { key } = await seedCaller();
    const marker = unique("hdr-missing");
    await expectProblem(await fetchGw(`/hdr-missing/${marker}`, { headers: { "x-api-key": key } }), 500, "GATEWAY_MISCONFIGURED");
    expect(await originRecords(marker)).toEqual([]);
  });

  it("a rendered value with CR, LF or NUL (a secret stored around the admin API's checks) is a 400 and nothing is forwarded", async () => {
    const db = createDb(env.DB);
    const { key } = await seedCaller();
    for (const value of ["ok\r\nx-injected: yes", "ok\nx-injected: yes", "ok\rx-injected: yes", "ok\u0000x-injected: yes"]) {
      await putSecret(db, env, { actor: "test", requestId: "req_test" }, BAD, { value });
      const marker = unique("hdr-crlf");
      const body = await expectProblem(await fetchGw(`/hdr-bad/${marker}`, { headers: { "x-api-key": key } }), 400, "HEADER_INVALID");
      expect(JSON.stringify(body)).not.toContain("x-injected");
      expect(await originRecords(marker)).toEqual([]);
    }
  });

  it("drops origin response headers that would leak an injected credential", async () => {
    await admin("PUT", `/secrets/${S}`, { value: "global-origin-token-1" });
    const { key } = await seedCaller();
    const res = await fetchGw(`/hdr-leak/__reflect/${unique("m")}`, { headers: { "x-api-key": key, "x-harmless": "fine" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-reflected-x-harmless")).toBe("fine");
    expect(res.headers.get("x-reflected-authorization")).toBeNull();
    expect(res.headers.get("x-reflected-x-api-token")).toBeNull();
    const all = JSON.stringify([...res.headers]);
    expect(all).not.toContain(ORIGIN_SECRET);
    expect(all).not.toContain("global-origin-token-1");
  });

  it("refuses unsafe templates at config load, naming the field", () => {
    const issues = (o: Parameters<typeof headers>[0]) => headers(o).configIssues?.map((i) => `${i.path.join(".")}: ${i.message}`) ?? [];
    expect(issues({ request: { set: { "x-a": "a\r\nb" } } })).toEqual(["request.set.x-a: must not contain CR, LF or NUL"]);
    expect(issues({ request: { add: { "x-a": "a\u0000" } } })[0]).toContain("CR, LF or NUL");
    expect(issues({ request: { set: { "x-a": "{proxyUser.password}" } } })[0]).toContain("unknown placeholder {proxyUser.password}");
    expect(issues({ request: { set: { "x-a": "{requestId" } } })[0]).toContain("without '}'");
    expect(issues({ response: { set: { "x-a": "{secret:TOKEN}" } } })[0]).toContain("only be used in request headers");
    expect(issues({ request: { set: { "x-portcullis-user-id": "x" } } })[0]).toContain("gateway owns this header");
    // The underscore spelling is the same variable to a CGI-style origin.
    expect(issues({ request: { set: { x_portcullis_user_group: "x" } } })[0]).toContain("gateway owns this header");
    expect(issues({ request: { add: { X_Request_Id: "x" } } })[0]).toContain("gateway owns this header");
    expect(issues({ request: { remove: ["bad header"] } })[0]).toContain("valid header name");
  });
});
