/** Types for scripts/test-gateway.mjs (plain JS so scripts can run it without a build step). */
export function startTestGateway(opts: { originUrl: string; adminToken: string; port?: number; entrypoint?: string }): Promise<{ url: string; persist: string; stop: () => Promise<void> }>;
export function d1Execute(persist: string, sql: string): Promise<string>;
