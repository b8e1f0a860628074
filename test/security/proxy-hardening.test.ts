import { env } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { authorize } from "../../plugins/authorize";
import { headers } from "../../plugins/headers";
import { keyAuth } from "../../plugins/key-auth";
import { requestLimits } from "../../plugins/request-limits";
import { ADMIN, expectProblem, gw, gwStream, originRecords, seedCaller, testGateway, unique } from "../helpers";
import { raw, rawOriginRecords, seedRawCaller, sendRaw } from "./raw";

/**
 * What an origin sees of a client, and what a client sees of an origin, at the edges the
 * header and path guards used to miss: secrets that are sent trimmed, the reason phrase,
 * forwarding headers beyond the usual six, and a body that outlasts the origin timeout.
 */

const STORE_SECRET_NAME = unique("PH").replace(/[^A-Za-z0-9_]/g, "_");
// As sent, `Headers.set` trims these: the origin gets (and can echo) the trimmed value.
const ENV_SECRET = "env-origin-secret-with-newline-42\n";
const SHORT_SECRET = " k3y\n";
const STORE_SECRET = "store-origin-secret-trailing-space-42 ";
// Non-ASCII: the runtime would log a warning quoting the whole header value, secret included.
const ACCENTED_SECRET = "env-s3cret-t\u00f6ken-42";

const fetchGw = testGateway(
  {
    upstreams: {
      newline: { url: "http://127.0.0.1:9", urlFromEnv: "TEST_ORIGIN_URL", credential: { header: "Authorization", prefix: "Bearer ", fromEnv: "PH_NEWLINE_TOKEN" } },
      short: { url: "http://127.0.0.1:9", urlFromEnv: "TEST_ORIGIN_URL", credential: { header: "X-Origin-Key", fromEnv: "PH_SHORT_TOKEN" } },
      bare: { url: "http://127.0.0.1:9", urlFromEnv: "TEST_ORIGIN_URL" },
      echo: { url: "http://127.0.0.1:9", urlFromEnv: "TEST_ORIGIN_URL", timeoutMs: 2_000 },
      accented: { url: "http://127.0.0.1:9", urlFromEnv: "TEST_ORIGIN_URL", credential: { header: "Authorization", prefix: "Bearer ", fromEnv: "PH_ACCENTED_TOKEN" } },
    },
    plugins: [keyAuth(), authorize()],
    routes: [
      { name: "newline", path: "/newline/*", upstream: "newline", permission: "echo:read" },
      { name: "short", path: "/short/*", upstream: "short", permission: "echo:read" },
      { name: "store", path: "/store/*", upstream: "bare", permission: "echo:read", plugins: [headers({ request: { set: { "x-api-token": `{secret:${STORE_SECRET_NAME}}` } } })] },
      { name: "long", path: "/long/*", upstream: "echo", permission: "echo:read", plugins: [requestLimits({ timeoutMs: 500 })] },
      { name: "accented", path: "/accented/*", upstream: "accented", permission: "echo:read" },
    ],
  },
  { PH_NEWLINE_TOKEN: ENV_SECRET, PH_SHORT_TOKEN: SHORT_SECRET, PH_ACCENTED_TOKEN: ACCENTED_SECRET },
);

let key: string;
beforeAll(async () => {
  key = (await seedCaller({ permissions: ["echo:read"] })).key;
  const put = await fetchGw(`/admin/v1/secrets/${STORE_SECRET_NAME}`, { method: "PUT", headers: { ...ADMIN, "content-type": "application/json" }, body: JSON.stringify({ value: STORE_SECRET }) });
  expect(put.status).toBe(200);
});
const withKey = () => ({ "x-api-key": key });
const headersHolding = (res: Response, secret: string) => [...res.headers].filter(([, v]) => v.includes(secret));

describe("a credential with surrounding whitespace is still caught when the origin echoes it", () => {
  it("an env credential ending in a newline (a secret piped from a file)", async () => {
    const m = unique("nl");
    const res = await fetchGw(`/newline/${m}/__echo-auth`, { headers: withKey() });
    expect(res.status).toBe(200);
    // The origin really got it, trimmed: that is the form that must not come back.
    expect((await originRecords(m))[0]!.headers.authorization).toBe(`Bearer ${ENV_SECRET.trim()}`);
    expect(headersHolding(res, ENV_SECRET.trim())).toEqual([]);
    expect(res.headers.has("x-echo-authorization")).toBe(false);
  });

  it("a short credential (whole-value rule) with leading and trailing whitespace", async () => {
    const m = unique("short");
    const res = await fetchGw(`/short/${m}/__echo-auth`, { headers: withKey() });
    expect(res.status).toBe(200);
    expect((await originRecords(m))[0]!.headers["x-origin-key"]).toBe(SHORT_SECRET.trim());
    // The echo header's whole value is the short secret as sent: dropped. Others stay.
    expect(res.headers.has("x-echo-origin-key")).toBe(false);
    expect(res.headers.get("content-type")).toBe("text/plain");
  });

  it("a stored {secret:…} ending in a space", async () => {
    const m = unique("store");
    const res = await fetchGw(`/store/${m}/__reflect`, { headers: withKey() });
    expect(res.status).toBe(200);
    expect((await originRecords(m))[0]!.headers["x-api-token"]).toBe(STORE_SECRET.trim());
    expect(headersHolding(res, STORE_SECRET.trim())).toEqual([]);
    expect(res.headers.has("x-reflected-x-api-token")).toBe(false);
  });
});

describe("the origin's reason phrase is not passed on", () => {
  it("a credential in the reason phrase does not reach the client (fetch API)", async () => {
    const { key: k } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("reason");
    const res = await gw(`/echo/${m}/__reason`, { headers: { authorization: `Bearer ${k}` } });
    expect(res.status).toBe(401);
    expect((await originRecords(m))[0]!.headers.authorization).toBe(`Bearer ${env.ECHO_ORIGIN_TOKEN}`);
    expect(res.statusText).not.toContain(env.ECHO_ORIGIN_TOKEN);
    expect(res.statusText).toBe("Unauthorized");
  });

  it("nor the status line on the wire", async () => {
    const k = await seedRawCaller(["echo:read"]);
    const m = `reason${Date.now().toString(36)}`;
    for (const target of [`/echo/${m}/__reason`, `/api/v2/${m}/__reason`]) {
      const res = await sendRaw(raw.direct, { target, headers: [["Authorization", `Bearer ${k}`]] });
      const statusLine = res.raw.split("\r\n")[0]!;
      expect(res.status, statusLine).toBe(401);
      expect(statusLine).not.toContain("origin-secret");
      // The runtime's standard phrase for the status, not the origin's.
      expect(statusLine).toBe("HTTP/1.1 401 Unauthorized");
    }
    expect(await rawOriginRecords(m)).toHaveLength(2);
  });
});

describe("an env credential that is not printable ASCII", () => {
  it("is a 500 GATEWAY_MISCONFIGURED that names the variable, never the value, and nothing is forwarded", async () => {
    const m = unique("accented");
    const res = await fetchGw(`/accented/${m}`, { headers: withKey() });
    const body = await expectProblem(res, 500, "GATEWAY_MISCONFIGURED");
    expect(body.detail).toContain("PH_ACCENTED_TOKEN");
    expect(JSON.stringify(body)).not.toContain("s3cret");
    expect(await originRecords(m)).toHaveLength(0);
  });
});

describe("forwarding and client-address headers are the gateway's alone", () => {
  it("every X-Forwarded-* a client sends is dropped; the gateway's -For and -Proto are what the origin gets", async () => {
    const { key: k } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("xfwd");
    const spoofed: Record<string, string> = {
      "x-forwarded-user": "admin",
      "X-Forwarded-Email": "admin@example.com",
      "x-forwarded-groups": "admins",
      "x-forwarded-preferred-username": "admin",
      "x-forwarded-access-token": "forged",
      "x-forwarded-client-cert": "By=spiffe://cluster/ns/admin;URI=spiffe://cluster/ns/admin/sa/root",
      "x-forwarded-scheme": "https",
      "x-forwarded-ssl": "on",
      "x-forwarded-uri": "/admin",
      "x-forwarded-for": "10.0.0.1",
      "x-forwarded-proto": "http",
      "client-ip": "10.0.0.1",
      "x-cluster-client-ip": "10.0.0.1",
    };
    const res = await gw(`/echo/${m}`, { headers: { authorization: `Bearer ${k}`, "cf-connecting-ip": "203.0.113.7", ...spoofed } });
    expect(res.status).toBe(200);
    const [rec] = await originRecords(m);
    const forwarded = Object.keys(rec!.headers).filter((h) => h.startsWith("x-forwarded-"));
    expect(forwarded.sort()).toEqual(["x-forwarded-for", "x-forwarded-proto"]);
    expect(rec!.headers["x-forwarded-for"]).toBe("203.0.113.7");
    expect(rec!.headers["x-forwarded-proto"]).toBe("https");
    expect(rec!.headers).not.toHaveProperty("client-ip");
    expect(rec!.headers).not.toHaveProperty("x-cluster-client-ip");
  });

  it("an underscore spelling of a dropped header is dropped too (CGI-style origins read both as one)", async () => {
    const { key: k } = await seedCaller({ permissions: ["echo:read"] });
    const m = unique("xunder");
    const spoofed = { X_Forwarded_For: "10.0.0.1", x_real_ip: "10.0.0.1", X_Portcullis_User_Id: "usr_admin", x_http_method_override: "DELETE", x_custom_thing: "kept" };
    const res = await gw(`/echo/${m}`, { headers: { authorization: `Bearer ${k}`, ...spoofed } });
    expect(res.status).toBe(200);
    const [rec] = await originRecords(m);
    const underscored = Object.keys(rec!.headers).filter((h) => h.includes("_"));
    expect(underscored).toEqual(["x_custom_thing"]);
  });
});

describe("timeoutMs bounds the wait for the origin's answer, not the body", () => {
  it("a download that streams for longer than timeoutMs arrives whole", async () => {
    // 15 KiB, 1 KiB every 100 ms: ~1.5 s of body behind headers that come at once, on a 500 ms route.
    const m = unique("long");
    const started = Date.now();
    const res = await fetchGw(`/long/${m}/__trickle/15`, { headers: withKey() });
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBe(15 * 1024);
    expect(Date.now() - started).toBeGreaterThan(1_000);
  });

  it("an origin whose headers come later than timeoutMs is still a 504 problem", async () => {
    const m = unique("late");
    const res = await fetchGw(`/long/${m}/__slow/1500`, { headers: withKey() });
    const problem = await expectProblem(res, 504, "UPSTREAM_TIMEOUT");
    expect(problem.detail).toContain("500 ms");
  });

  it("the same holds through the whole worker (a long response read as a stream)", async () => {
    // The echo route's upstream has timeoutMs 2 000; this body takes ~3 s.
    const { key: k } = await seedCaller({ permissions: ["echo:read"] });
    const res = await gwStream(`/echo/${unique("dl")}/__trickle/30`, { headers: { authorization: `Bearer ${k}` } });
    expect(res.status).toBe(200);
    expect((await res.arrayBuffer()).byteLength).toBe(30 * 1024);
  }, 15_000);
});

describe("a compressed origin answer still reaches the client intact", () => {
  it("Content-Encoding: gzip is passed on with a body the client can decode", async () => {
    const { key: k } = await seedCaller({ permissions: ["echo:read"] });
    const res = await gw(`/echo/${unique("gz")}/__gzip`, { headers: { authorization: `Bearer ${k}` } });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("gzipped-body ".repeat(50));
  });
});
