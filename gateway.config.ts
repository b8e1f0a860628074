import { audit } from "./plugins/audit";
import { authorize } from "./plugins/authorize";
import { keyAuth } from "./plugins/key-auth";
import { requestLimits } from "./plugins/request-limits";
import { defineGateway } from "./worker/gateway/config";

/**
 * What runs at the edge: upstreams (origins), the global plugin chain and the routes.
 * Changing this file is a code change (reviewed, then `wrangler deploy`); proxy users, roles
 * and keys are data, managed live through the admin API.
 */
export default defineGateway({
  upstreams: {
    // The demo origin `npm start` runs on 127.0.0.1:8788. Set DEMO_ORIGIN_URL to point elsewhere.
    demo: {
      url: "http://127.0.0.1:8788",
      urlFromEnv: "DEMO_ORIGIN_URL",
      credential: { header: "Authorization", prefix: "Bearer ", fromEnv: "DEMO_ORIGIN_TOKEN" },
      timeoutMs: 10_000,
    },
  },
  // audit first: it wraps the whole chain, so it records every decision (see plugins/audit).
  plugins: [audit(), keyAuth(), authorize()],
  routes: [
    { name: "demo-read", path: "/demo/*", methods: ["GET"], upstream: "demo", permission: "demo:read" },
    {
      name: "demo-write",
      path: "/demo-write/*",
      methods: ["POST", "PUT", "PATCH", "DELETE"],
      upstream: "demo",
      permission: "demo:write",
      // Built-in plugins (see README "Plugins"): route plugins run after the global chain.
      plugins: [requestLimits({ maxBodyBytes: 1_048_576, timeoutMs: 5_000 })],
    },
  ],
});
