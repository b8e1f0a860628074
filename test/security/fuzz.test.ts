import { env } from "cloudflare:test";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN, admin, gw, originRecords, seedCaller, unique } from "../helpers";
import { checkRawPath, raw, seedRawCaller } from "./raw";

/**
 * Property-based fuzzing with fast-check. Run counts are bounded so the suite stays fast; a
 * failure prints its seed and shrunk counterexample (re-run with `{ seed, path }` to replay).
 */
const RUNS = { paths: 150, pathsEntry: 50, headers: 40, admin: 25 };

// Pieces real normalization bypasses are built from, plus ordinary segments and route names.
const segment = fc.oneof(
  fc.constantFrom("echo", "echo-write", "admin", "v1", "users", "api", "v2", "base", "public", "status", "internal", "a", "B", "x.json"),
  fc.constantFrom("..", ".", "...", "%2e", "%2E%2e", ".%2e", "%2e.", "%2f", "%2F", "%5c", "\\", ";", ";x=1", "..;", "%00", "%25", "%252e", "%252f", "x.", "~", "%c0%ae", "%e0%80%ae", "%f8%80%80%80%ae", "%u002e", "%u2215", "%%32%65", "%2%65", "%", "@evil.example", "%41", "%20", "ECHO", "Echo", ""),
  fc.stringMatching(/^[A-Za-z0-9._~%-]{1,6}$/),
);
const rawTarget = fc
  .tuple(fc.array(segment, { minLength: 1, maxLength: 6 }), fc.constantFrom("", "/", "#frag", "#/../admin", "?q=1", "?q=/../x"))
  .map(([segs, tail]) => `/${segs.join("/")}${tail}`);


describe("fuzz: raw request paths", () => {
  let key: string;
  beforeAll(async () => {
    key = await seedRawCaller(["echo:read"]);
  });

  it.each([
    ["direct", () => raw.direct, RUNS.paths],
    ["entry", () => raw.entry, RUNS.pathsEntry],
  ] as const)("%s: refused, or exactly like the canonical path; nothing outside the route table reaches the origin", async (_n, port, runs) => {
    await fc.assert(
      fc.asyncProperty(rawTarget, async (target) => {
        await checkRawPath(port(), target, key);
      }),
      { numRuns: runs },
    );
  });
});

describe("fuzz: request headers", () => {
  let caller: Awaited<ReturnType<typeof seedCaller>>;
  beforeAll(async () => {
    caller = await seedCaller({ permissions: ["echo:read"] });
  });

  const tokenChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~";
  const name = fc.oneof(
    fc.constantFrom("connection", "x-portcullis-user-id", "X-Portcullis-Key-Id", "x-portcullis-route", "x-forwarded-for", "forwarded", "x-request-id", "host", "x-http-method-override", "te", "upgrade", "transfer-encoding", "cf-connecting-ip", "x-origin-key", "cookie", "content-length"),
    fc.string({ unit: fc.constantFrom(...tokenChars), minLength: 1, maxLength: 20 }),
  ).filter((n) => !["authorization", "x-api-key"].includes(n.toLowerCase()));
  const value = fc.oneof(
    fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 60 }),
    fc.constantFrom("close, authorization, x-portcullis-user-id", "usr_admin", "DELETE", "chunked", "websocket", "127.0.0.1", "for=1.2.3.4"),
  );

  it("no 500, identity and credential always the gateway's, no secret in any response", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(name, value), { maxLength: 8 }), async (pairs) => {
        const m = unique("fzh");
        const headers = new Headers();
        for (const [n, v] of pairs) {
          try {
            headers.append(n, v.trim());
          } catch {
            // Not a header the fetch API can send; skip it.
          }
        }
        headers.set("authorization", `Bearer ${caller.key}`);
        let res: Response;
        try {
          res = await gw(`/echo/${m}`, { headers });
        } catch {
          return; // the client refused to send it (e.g. a forbidden Content-Length); nothing to check
        }
        expect(res.status).not.toBe(500);
        const text = await res.text();
        for (const secret of [caller.key, env.ADMIN_TOKEN]) expect(text.includes(secret)).toBe(false);
        const recs = await originRecords(m);
        if (res.status === 200) {
          expect(recs).toHaveLength(1);
          const h = recs[0]!.headers;
          expect(h["x-portcullis-user-id"]).toBe(caller.user.id);
          expect(h["x-portcullis-key-id"]).toBe(caller.keyId);
          expect(h["x-portcullis-route"]).toBe("echo-read");
          expect(h.authorization).toBe(`Bearer ${env.ECHO_ORIGIN_TOKEN}`);
          expect(recs[0]!.method).toBe("GET");
          for (const k of Object.keys(h)) if (k.startsWith("x-portcullis-")) expect(["x-portcullis-user-id", "x-portcullis-user-name", "x-portcullis-key-id", "x-portcullis-route"]).toContain(k);
        } else {
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(recs).toHaveLength(0);
        }
      }),
      { numRuns: RUNS.headers },
    );
  });
});

describe("fuzz: admin API bodies and ids", () => {
  const NO_500 = [200, 201, 400, 404, 409, 415];
  const json = fc.jsonValue({ maxDepth: 3 });
  const field = (names: string[]) => fc.dictionary(fc.oneof(fc.constantFrom(...names, "__proto__", "constructor", "prototype"), fc.string({ maxLength: 8 })), json, { maxKeys: 6 });
  const userBody = fc.oneof(
    field(["name", "description", "group", "status", "roles", "metadata", "expiresAt", "allowedIps"]),
    fc.record({ name: fc.string({ maxLength: 70 }), allowedIps: fc.array(fc.string({ maxLength: 45 }), { maxLength: 3 }), metadata: fc.dictionary(fc.string(), json, { maxKeys: 4 }) }, { requiredKeys: [] }),
    json,
  );
  const roleBody = fc.oneof(field(["name", "description", "permissions"]), fc.record({ name: fc.string({ maxLength: 70 }), permissions: fc.array(fc.string({ maxLength: 30 }), { maxLength: 4 }) }), json);
  const keyBody = fc.oneof(field(["name", "permissions", "expiresAt", "gracePeriodSeconds"]), json);

  async function check(res: Response) {
    expect(NO_500, `${res.status}`).toContain(res.status);
    const text = await res.text();
    expect(text.includes(env.ADMIN_TOKEN)).toBe(false);
    if (res.status >= 400) {
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      expect(JSON.parse(text).requestId).toMatch(/^req_[0-9a-f]{32}$/);
    }
  }

  it("POST /users, /roles and keys, PATCH /users/{id}: never a 500, every error a problem", async () => {
    const { user, keyId } = await seedCaller();
    await fc.assert(
      fc.asyncProperty(userBody, roleBody, keyBody, async (u, r, k) => {
        await check(await admin("POST", "/users", u));
        await check(await admin("POST", "/roles", r));
        await check(await admin("PATCH", `/users/${user.id}`, u));
        await check(await admin("POST", `/users/${user.id}/keys`, k));
        await check(await admin("POST", `/keys/${keyId}/rotate`, k));
      }),
      { numRuns: RUNS.admin },
    );
  });

  it("raw bodies and content types: never a 500", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 200 }), fc.constantFrom("application/json", "text/plain", "application/json; charset=utf-16", "", "multipart/form-data; boundary=x"), async (body, type) => {
        await check(await gw("/admin/v1/users", { method: "POST", headers: { ...ADMIN, ...(type ? { "content-type": type } : {}) }, body }));
      }),
      { numRuns: RUNS.admin },
    );
  });

  it("ids and query parameters: 400 or 404, never a 500", async () => {
    const idChars = fc.string({ unit: fc.constantFrom(..."usrkeyrol_0123456789aZ%.-'\"; *"), maxLength: 40 });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("/users/", "/roles/", "/keys/"), idChars, fc.string({ maxLength: 30 }), async (base, id, cursor) => {
        await check(await admin("GET", `${base}${encodeURIComponent(id)}`));
        await check(await admin("GET", `/users?cursor=${encodeURIComponent(cursor)}&limit=${encodeURIComponent(cursor)}`));
      }),
      { numRuns: RUNS.admin },
    );
  });
});
