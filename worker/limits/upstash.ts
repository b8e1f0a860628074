import { hexDigest } from "../lib/digest";
import { HttpClient } from "../vendor/upstash-http.js";
import { BUCKET_LEASE_TTL_MS, FAIR_SHARE, PERIOD_LEASE_TTL_MS } from "./algorithms";
import type { LeaseReply, LeaseRequest, LimiterBackend, LimitSpec, UsageReport } from "./types";

/**
 * The counting rules of algorithms.ts in Lua, run atomically by Redis (one script = one atomic
 * step per key, as the Durable Object's one call is). Time comes from Redis (`TIME`), so every
 * gateway sharing the database agrees on window boundaries.
 *
 * Why our own script rather than @upstash/ratelimit's `limit(id, { rate: k })`: leasing needs a
 * PARTIAL grant ("up to k, whatever is left"). Its fixed window counts a refused `rate: k` in
 * full, and its sliding window answers "refused" both when it counted the k and when it did not
 * (and clamps `remaining` to 0), so the isolate cannot know what to give back: it would either
 * lose tokens or over-admit. The script below grants min(k, fair share of what is left) in one
 * step and reports exactly what it counted.
 *
 * ARGV: algorithm, limit, windowMs, periodStart, periodEnd, want, give, giveWindow, fairShare,
 * bucketLeaseTtl, periodLeaseTtl, mode ("lease" | "usage" | "reset").
 * Reply: { granted, remaining, retryMs, resetMs, ttlMs, window, used }.
 *
 * The script's three parts: windows (fixed, sliding) as one counter per window, `ws` its start;
 * the token bucket as a hash {tokens, at, gen}; the quota period as a hash {start, count, gen},
 * a newer period replacing an older one. `gen` is one life of a bucket or quota counter (its
 * creation time, or the time of the last admin reset): leases carry it as their window, and
 * handed-back tokens count only in the same life. (Comments live here, not in the script: its
 * text ships in the bundle and crosses the wire on each EVAL.)
 */
export const LEASE_SCRIPT = `
local base = KEYS[1]
local alg = ARGV[1]
local limit = tonumber(ARGV[2])
local w = tonumber(ARGV[3])
local pstart = tonumber(ARGV[4])
local pend = tonumber(ARGV[5])
local want = tonumber(ARGV[6])
local give = tonumber(ARGV[7])
local giveWindow = tonumber(ARGV[8])
local share = tonumber(ARGV[9])
local bucketTtl = tonumber(ARGV[10])
local periodTtl = tonumber(ARGV[11])
local mode = ARGV[12]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function grant(avail)
  if mode ~= 'lease' or avail <= 0 or want <= 0 then return 0 end
  return math.min(want, avail, math.max(1, math.floor(avail / share)))
end

if alg == 'fixed-window' or alg == 'sliding-window' then
  local ws = math.floor(now / w) * w
  local curKey = base .. ':w:' .. w .. ':' .. ws
  local prevKey = base .. ':w:' .. w .. ':' .. (ws - w)
  if mode == 'reset' then
    redis.call('DEL', curKey, prevKey)
    return {0, limit, 0, 0, 0, ws, 0}
  end
  local cur = tonumber(redis.call('GET', curKey) or '0')
  local prev = 0
  local used = cur
  if alg == 'sliding-window' then
    prev = tonumber(redis.call('GET', prevKey) or '0')
    used = prev * ((ws + w - now) / w) + cur
  end
  local avail = math.floor(limit - used)
  local g = grant(avail)
  if g > 0 then
    cur = redis.call('INCRBY', curKey, g)
    redis.call('PEXPIRE', curKey, w * 2 + 1000)
  end
  local remaining = math.max(0, avail - g)
  local untilEnd = ws + w - now
  local retry = 0
  if remaining <= 0 then
    if alg == 'fixed-window' or limit < 1 then
      retry = untilEnd
    elseif cur <= limit - 1 then
      if prev > 0 then retry = math.max(1, math.ceil(ws + w - (w * (limit - 1 - cur)) / prev - now)) end
    else
      retry = math.max(1, math.ceil(ws + w + w * (1 - (limit - 1) / cur) - now))
    end
  end
  local reset = untilEnd
  if alg == 'sliding-window' and remaining == 0 then reset = retry end
  return {g, remaining, retry, reset, untilEnd, ws, math.ceil(used + g)}
end

if alg == 'token-bucket' then
  local key = base .. ':b:' .. w
  local h = redis.call('HMGET', key, 'tokens', 'at', 'gen')
  local tokens = limit
  local at = now
  local gen = now
  if h[1] then
    tokens = tonumber(h[1])
    at = tonumber(h[2])
    gen = tonumber(h[3] or '0')
  end
  if mode == 'reset' then
    gen = math.max(now, gen + 1)
    redis.call('HSET', key, 'tokens', string.format('%d', limit), 'at', string.format('%d', now), 'gen', string.format('%d', gen))
    redis.call('PEXPIRE', key, 1000)
    return {0, limit, 0, 0, 0, gen, 0}
  end
  tokens = math.min(limit, tokens + math.max(0, now - at) * limit / w)
  at = math.max(now, at)
  if give > 0 and giveWindow == gen and mode == 'lease' then tokens = math.min(limit, tokens + give) end
  local g = grant(math.floor(tokens))
  tokens = tokens - g
  local perToken = w
  if limit >= 1 then perToken = w / limit end
  if mode == 'lease' then
    redis.call('HSET', key, 'tokens', string.format('%.6f', tokens), 'at', string.format('%d', at), 'gen', string.format('%d', gen))
    redis.call('PEXPIRE', key, math.ceil(math.max(0, limit - tokens) * perToken) + 1000)
  end
  local remaining = math.floor(tokens)
  local retry = 0
  if remaining < 1 then retry = math.max(1, math.ceil((1 - tokens) * perToken)) end
  return {g, remaining, retry, math.ceil(math.max(0, limit - tokens) * perToken), math.min(w, bucketTtl), gen, math.ceil(limit - tokens)}
end

local key = base .. ':p'
local h = redis.call('HMGET', key, 'start', 'count', 'gen')
local start = pstart
local count = 0
local gen = pstart
if h[1] and tonumber(h[1]) >= pstart then
  start = tonumber(h[1])
  count = tonumber(h[2])
  gen = tonumber(h[3] or h[1])
end
if mode == 'reset' then
  gen = math.max(now, gen + 1)
  redis.call('HSET', key, 'start', string.format('%d', start), 'count', 0, 'gen', string.format('%d', gen))
  redis.call('PEXPIRE', key, math.max(0, pend - now) + 86400000)
  return {0, limit, 0, 0, 0, gen, 0}
end
if give > 0 and giveWindow == gen and mode == 'lease' then count = math.max(0, count - give) end
local avail = limit - count
local g = grant(avail)
count = count + g
if mode == 'lease' then
  redis.call('HSET', key, 'start', string.format('%d', start), 'count', count, 'gen', string.format('%d', gen))
  redis.call('PEXPIRE', key, math.max(0, pend - now) + 86400000)
end
local remaining = math.max(0, avail - g)
local untilEnd = math.max(1, pend - now)
local retry = 0
if remaining <= 0 then retry = untilEnd end
return {g, remaining, retry, untilEnd, math.min(untilEnd, periodTtl), gen, count}
`;

type ScriptReply = [number, number, number, number, number, number, number];

export interface UpstashBackendOptions {
  url: string;
  token: string;
  /** Prefix of every Redis key the gateway writes. */
  prefix: string;
  /** Each HTTP call is aborted after this long (the caller's fail mode then applies). */
  timeoutMs: number;
}

function args(spec: LimitSpec, mode: "lease" | "usage" | "reset", want = 0, give = 0, giveWindow = 0): string[] {
  return [
    spec.algorithm,
    spec.limit,
    spec.windowMs,
    spec.periodStart ?? 0,
    spec.periodEnd ?? 0,
    want,
    give,
    giveWindow,
    FAIR_SHARE,
    BUCKET_LEASE_TTL_MS,
    PERIOD_LEASE_TTL_MS,
    mode,
  ].map(String);
}

/**
 * LEASE_SCRIPT over @upstash/redis's REST client: EVALSHA first, EVAL once on NOSCRIPT, so the
 * script body crosses the wire once per database (as the package's `Script.exec` does).
 */
class LeaseScript {
  /** The script's SHA-1, once computed. A string, not a shared promise: requests must not await each other's I/O. */
  private sha: string | undefined;

  constructor(private readonly http: HttpClient) {}

  async exec(keys: string[], argv: string[]): Promise<ScriptReply> {
    this.sha ??= await hexDigest("SHA-1", LEASE_SCRIPT);
    try {
      return await this.call(["evalsha", this.sha, keys.length, ...keys, ...argv]);
    } catch (err) {
      if (err instanceof Error && err.message.toLowerCase().includes("noscript")) {
        return await this.call(["eval", LEASE_SCRIPT, keys.length, ...keys, ...argv]);
      }
      throw err;
    }
  }

  private async call(command: (string | number)[]): Promise<ScriptReply> {
    const { result, error } = await this.http.request<ScriptReply>({ body: command });
    if (error) throw new Error(error);
    if (result === undefined) throw new TypeError("Upstash answered without a result");
    return result;
  }
}

// One client per URL+token per isolate: creating it is cheap, but its script SHA is cached on it.
const clients = new Map<string, LeaseScript>();

function makeClient(o: UpstashBackendOptions): LeaseScript {
  const http = new HttpClient({
    baseUrl: o.url,
    headers: { authorization: `Bearer ${o.token}` },
    // The fail mode decides what a failure means; a retry with backoff would only blow the time budget.
    retry: false,
    signal: () => AbortSignal.timeout(o.timeoutMs),
  });
  return new LeaseScript(http);
}

/**
 * The Upstash backend, selected when UPSTASH_REDIS_REST_URL and UPSTASH_REDIS_REST_TOKEN are set
 * (or the env names a limit's `upstash` option gives). Consistency: every gateway that shares the
 * database shares the counters; each lease is one atomic script in the database's primary region.
 */
export function upstashBackend(o: UpstashBackendOptions): LimiterBackend {
  const id = `${o.url}\n${o.token}\n${o.timeoutMs}`;
  let script = clients.get(id);
  if (!script) clients.set(id, (script = makeClient(o)));
  const k = (key: string) => `${o.prefix}:${key}`;
  return {
    kind: "upstash",
    async lease(key: string, req: LeaseRequest): Promise<LeaseReply> {
      const r = await script.exec([k(key)], args(req.spec, "lease", req.want, req.give, req.giveWindow));
      return { granted: r[0], remaining: r[1], retryMs: r[2], resetMs: r[3], ttlMs: r[4], window: r[5] };
    },
    async usage(key: string, spec: LimitSpec): Promise<UsageReport> {
      const r = await script.exec([k(key)], args(spec, "usage"));
      return { used: r[6], remaining: r[1], resetMs: r[3], window: r[5] };
    },
    async reset(key: string, spec: LimitSpec): Promise<void> {
      await script.exec([k(key)], args(spec, "reset"));
    },
  };
}
