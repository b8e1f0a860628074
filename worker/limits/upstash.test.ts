// The Upstash backend's client (LEASE_SCRIPT over @upstash/redis's HttpClient), against the real
// local Redis through the REST bridge: EVALSHA, the EVAL fallback when the database does not know
// the script, and errors that name the failure without the token.
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { unique } from "../../test/helpers";
import { hexDigest } from "../lib/digest";
import type { LimitSpec } from "./types";
import { LEASE_SCRIPT, upstashBackend } from "./upstash";

/** One raw command to the bridge, as the REST API takes it. */
async function redis(command: (string | number)[], token = env.UPSTASH_TEST_TOKEN): Promise<{ status: number; body: { result?: unknown; error?: string } }> {
  const res = await fetch(env.UPSTASH_TEST_URL, { method: "POST", headers: { authorization: `Bearer ${token}` }, body: JSON.stringify(command) });
  return { status: res.status, body: await res.json() };
}

// Far from its limit, so each lease gets all it asks for (grants shrink only near the end: FAIR_SHARE).
const spec: LimitSpec = { algorithm: "fixed-window", limit: 100, windowMs: 60_000 };
const backend = (token = env.UPSTASH_TEST_TOKEN) => upstashBackend({ url: env.UPSTASH_TEST_URL, token, prefix: unique("pc-test"), timeoutMs: 2000 });

describe("Upstash backend client", () => {
  it("loads the script with EVAL when Redis does not know it, then counts every grant exactly", async () => {
    const sha = await hexDigest("SHA-1", LEASE_SCRIPT);
    expect((await redis(["script", "flush"])).body.result).toBe("OK");
    expect((await redis(["script", "exists", sha])).body.result).toEqual([0]);

    const b = backend();
    const first = await b.lease("subject", { spec, want: 4, give: 0, giveWindow: 0 });
    expect(first.granted).toBe(4);
    // The NOSCRIPT answer made the client send the script itself, which loads it.
    expect((await redis(["script", "exists", sha])).body.result).toEqual([1]);

    const second = await b.lease("subject", { spec, want: 4, give: 0, giveWindow: 0 });
    expect(second.granted).toBe(4);
    expect(second.remaining).toBe(92);
    expect((await b.usage("subject", spec)).used).toBe(8);
  });

  it("rejects with the service's error, never with the token in it", async () => {
    const wrong = "wrong-token-4c1d9e";
    const err = await backend(wrong)
      .lease("subject", { spec, want: 1, give: 0, giveWindow: 0 })
      .then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String((err as Error).message)).toMatch(/unauthori[sz]ed|token/i);
    expect(String((err as Error).message)).not.toContain(wrong);
    expect(String((err as Error).message)).not.toContain(env.UPSTASH_TEST_TOKEN);
  });
});
