/** Types for scripts/test-gateway.mjs (plain JS so scripts can run it without a build step). */
export function startTestGateway(opts: { originUrl: string; adminToken: string; port?: number; entrypoint?: string }): Promise<{ url: string; stop: () => Promise<void> }>;
