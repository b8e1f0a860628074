// Types for upstash-http.js: @upstash/redis's HttpClient, typed as the package's public
// `Requester` (what its commands call), with the constructor options the limiter uses.
import type { Requester } from "@upstash/redis/cloudflare";

export interface HttpClientConfig {
  baseUrl: string;
  headers: { authorization: string } & Record<string, string>;
  /** `false`: one attempt, no backoff. */
  retry?: false | { retries?: number; backoff?: (retryCount: number) => number };
  /** A function is called per request, so each gets a fresh timeout. */
  signal?: AbortSignal | (() => AbortSignal);
  keepAlive?: boolean;
  readYourWrites?: boolean;
}

export declare class HttpClient implements Requester {
  constructor(config: HttpClientConfig);
  upstashSyncToken: string;
  readYourWrites: boolean;
  request: Requester["request"];
}
