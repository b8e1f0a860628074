import { expect, inject } from "vitest";
import { nonCanonicalReason } from "../../worker/gateway/upstream-url";

/**
 * Helpers for tests that need bytes on the wire: the raw-socket gateway started by
 * test/node/security-setup.ts (same gateway config as the pool's worker, its own D1 and its own
 * recording origin), reached through the node-side driver because workerd tests have no TCP client.
 */
export const raw = {
  /** workerd's own HTTP socket: the worker sees exactly what workerd's parser made of the bytes. */
  direct: inject("rawDirectPort"),
  /** Miniflare's dev entry in front of the worker (re-parses the URL, WHATWG style). */
  entry: inject("rawEntryPort"),
  origin: `http://127.0.0.1:${inject("rawOriginPort")}`,
  admin: `http://127.0.0.1:${inject("rawEntryPort")}/admin/v1`,
};
export const RAW_ADMIN = { authorization: "Bearer test-admin-token-0123456789abcdef" };

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The status line and headers as received. */
  raw: string;
}

const latin1 = (b: Uint8Array) => String.fromCharCode(...b);
const CRLF2 = [13, 10, 13, 10];
function indexOf(b: Uint8Array, seq: number[], from = 0): number {
  outer: for (let i = from; i <= b.length - seq.length; i++) {
    for (let j = 0; j < seq.length; j++) if (b[i + j] !== seq[j]) continue outer;
    return i;
  }
  return -1;
}

function dechunk(body: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  let i = 0;
  while (i < body.length) {
    const eol = indexOf(body, [13, 10], i);
    if (eol === -1) break;
    const size = parseInt(latin1(body.subarray(i, eol)), 16);
    if (!size) break;
    parts.push(body.subarray(eol + 2, eol + 2 + size));
    i = eol + 2 + size + 2;
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) (out.set(p, o), (o += p.length));
  return out;
}

/** Parses one HTTP/1.1 response (the driver returns everything until the server closed). */
export function parseResponse(bytes: Uint8Array): RawResponse {
  const split = indexOf(bytes, CRLF2);
  const head = latin1(bytes.subarray(0, split === -1 ? bytes.length : split));
  const [statusLine = "", ...lines] = head.split("\r\n");
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const c = l.indexOf(":");
    if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
  }
  let body = split === -1 ? new Uint8Array(0) : bytes.subarray(split + 4);
  if (headers["transfer-encoding"]?.includes("chunked")) body = dechunk(body);
  return { status: Number(statusLine.split(" ")[1] ?? 0), headers, body: new TextDecoder().decode(body), raw: head };
}

/**
 * Sends a request byte for byte. `target` goes on the request line as-is; `Host` and
 * `Connection: close` are added unless `headers` already has them (pass a full `rawRequest` to
 * control every byte). `closeAfter`: drop the connection once that many bytes came back.
 */
export async function sendRaw(
  port: number,
  opts: { method?: string; target?: string; headers?: Array<[string, string]>; body?: string; rawRequest?: string | Uint8Array; closeAfter?: number },
): Promise<RawResponse> {
  let bytes: string | Uint8Array;
  if (opts.rawRequest !== undefined) bytes = opts.rawRequest;
  else {
    const headers = [...(opts.headers ?? [])];
    const has = (n: string) => headers.some(([k]) => k.toLowerCase() === n);
    if (!has("host")) headers.unshift(["Host", "gateway.test"]);
    if (!has("connection")) headers.push(["Connection", "close"]);
    if (opts.body !== undefined && !has("content-length") && !has("transfer-encoding")) headers.push(["Content-Length", String(new TextEncoder().encode(opts.body).length)]);
    bytes = `${opts.method ?? "GET"} ${opts.target ?? "/"} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n${opts.body ?? ""}`;
  }
  const closeAfter = opts.closeAfter !== undefined ? `&closeAfter=${opts.closeAfter}` : "";
  const res = await fetch(`http://127.0.0.1:${inject("rawDriverPort")}/send?port=${port}${closeAfter}`, { method: "POST", body: bytes });
  expect(res.status).toBe(200);
  return parseResponse(new Uint8Array(await res.arrayBuffer()));
}

/** What the raw gateway's recording origin received whose raw target contains `marker`. */
export async function rawOriginRecords(marker: string): Promise<Array<{ method: string; url: string; headers: Record<string, string> }>> {
  return (await (await fetch(`${raw.origin}/__records?contains=${encodeURIComponent(marker)}`)).json()) as any;
}

let seq = 0;
/** A role + user + key on the raw gateway's D1 (through its admin API). */
export async function seedRawCaller(permissions: string[] = ["echo:read"]): Promise<string> {
  const n = `${Date.now().toString(36)}-${seq++}-${Math.random().toString(36).slice(2, 6)}`;
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${raw.admin}${path}`, { method: "POST", headers: { ...RAW_ADMIN, "content-type": "application/json" }, body: JSON.stringify(body) });
    expect(res.status).toBe(201);
    return (await res.json()) as any;
  };
  const role = await post("/roles", { name: `raw-role-${n}`, permissions });
  const user = await post("/users", { name: `raw-user-${n}`, roles: [role.name] });
  return (await post(`/users/${user.id}/keys`, {})).key as string;
}

/**
 * The canonical form of `target`, path and query, as the worker sees it. workerd's request-line
 * parser comes first: it drops a `#` and the rest of *its own segment* and keeps resolving the
 * path after it (`/a#x/../b` is `/b`, `/..#f` is `/`), and it resolves only literal `.` and `..`
 * segments, with a raw `\` an ordinary character of its segment (not WHATWG's second separator):
 * `/echo/\/..` is `/echo/` there, not WHATWG's `/echo//` (seen on the direct socket:
 * `/echo/x/\/..` reaches the echo route as `/echo/x/`, `/echo/\/../..` as `/`). What is left
 * then goes through WHATWG resolution (`\` → `/`, `%2e` → `.`), as Miniflare's entry re-parses
 * it; on the direct socket a path still holding `\` or `%2e` is refused by the gateway, so it
 * never gets that far. Both the gateway and the origin see that result, so that is what is
 * modelled.
 */
export function canonicalOf(target: string): string {
  const q = target.indexOf("?");
  const path = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? "" : target.slice(q);
  const segments = path.split("/").map((seg) => (seg.includes("#") ? seg.slice(0, seg.indexOf("#")) : seg));
  // workerd's own pass: literal dot segments only, everything else (`\`, `%2e`) kept as is.
  const out: string[] = [];
  segments.slice(1).forEach((seg, i, all) => {
    const last = i === all.length - 1;
    if (seg === "..") {
      if (out.length > 0) out.pop();
      if (last) out.push("");
    } else if (seg === ".") {
      if (last) out.push("");
    } else out.push(seg);
  });
  const url = new URL(`/${out.join("/")}${query}`, "http://gateway.test");
  return url.pathname + url.search;
}

let marks = 0;
/**
 * Sends `target` untouched, with a unique X-Test-Marker header (path normalization never
 * touches headers, and a marker in the URL could land inside a fragment); returns what the
 * origin got for it.
 */
export async function sendMarked(port: number, target: string, key?: string): Promise<{ res: RawResponse; origin: Array<{ url: string; headers: Record<string, string> }> }> {
  const m = `pn${Date.now().toString(36)}${marks++}`;
  const headers: Array<[string, string]> = [["X-Test-Marker", m]];
  if (key) headers.push(["Authorization", `Bearer ${key}`]);
  const res = await sendRaw(port, { target, headers });
  return { res, origin: await rawOriginRecords(m) };
}

/** Routes of the test gateway a caller may reach: echo:read keys, and everyone (public). */
const ROUTES_FOR_ECHO_READ = ["echo-read", "echo-exact", "prefixed", "public-status"];
const ROUTES_FOR_ANYONE = ["public-status"];

/**
 * The path property: the gateway either refuses `target` (400 PATH_INVALID, or a bare 400 from
 * workerd's parser) or forwards exactly one request, on a canonical path, through a route the
 * caller may use (`key` must hold only echo:read). For targets without a `#`, it must also
 * behave exactly like the canonical form (WHATWG resolution) — same status, same path at the
 * origin. workerd handles a `#` inside the request line in ways no URL standard describes
 * (`/p/x/..#f` reaches the worker as `/p/x/..`, `/p/..#/../a` as `/p/a`): for those only the
 * first part holds — whatever workerd hands over is what is authorized and what is forwarded.
 */
export async function checkRawPath(port: number, target: string, key?: string): Promise<"refused" | "canonical"> {
  const attack = await sendMarked(port, target, key);
  expect(attack.res.status, `${target} gave ${attack.res.raw}`).not.toBe(500);
  if (attack.res.status === 400) {
    if (attack.res.headers["content-type"] === "application/problem+json") expect(JSON.parse(attack.res.body).code).toBe("PATH_INVALID");
    expect(attack.origin, `${target} reached the origin`).toHaveLength(0);
    return "refused";
  }
  expect(attack.origin.length, `${target}: origin requests`).toBeLessThanOrEqual(1);
  if (attack.origin.length === 1) {
    const rec = attack.origin[0]!;
    expect(nonCanonicalReason(rec.url.split("?")[0]!), `${target} reached the origin as ${rec.url}`).toBeNull();
    expect(key ? ROUTES_FOR_ECHO_READ : ROUTES_FOR_ANYONE, `${target} reached route ${rec.headers["x-portcullis-route"]}`).toContain(rec.headers["x-portcullis-route"]);
    expect(attack.res.status).toBeLessThan(400);
  }
  if (target.includes("#")) return "canonical";
  const canon = canonicalOf(target);
  expect(nonCanonicalReason(canon.split("?")[0]!), `${target} was accepted but its canonical form ${canon} is not canonical`).toBeNull();
  const twin = await sendMarked(port, canon, key);
  expect(attack.res.status, `${target} vs canonical ${canon}`).toBe(twin.res.status);
  expect(attack.origin.length, `${target} vs canonical ${canon}: origin requests`).toBe(twin.origin.length);
  if (attack.origin.length > 0) expect(attack.origin[0]!.url).toBe(twin.origin[0]!.url);
  return "canonical";
}
