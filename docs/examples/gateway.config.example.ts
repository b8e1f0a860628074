// docs/examples/gateway.config.example.ts — a chain with built-ins and custom plugins.
import { authorize } from "../../plugins/authorize";
import { cors } from "../../plugins/cors";
import { headers } from "../../plugins/headers";
import { jwtAuth } from "../../plugins/jwt-auth";
import { keyAuth } from "../../plugins/key-auth";
import { requestLimits } from "../../plugins/request-limits";
import { requireIdempotencyKey } from "../../plugins/require-idempotency-key";
import { defineGateway } from "../../worker/gateway/config";
import { requireHeader } from "./minimal-plugin";
import { responseTiming } from "./response-timing-plugin";

export default defineGateway({
  upstreams: {
    orders: { url: "https://orders.internal.example", credential: { header: "Authorization", prefix: "Bearer ", fromEnv: "ORDERS_TOKEN" } },
    partner: { url: "https://partner-api.example" }, // its credential comes from the secret store, via `headers`
  },
  // The global chain, in order, on every route. cors first: preflights carry no credentials.
  plugins: [
    cors({ origins: ["https://app.example.com"], credentials: true }),
    responseTiming(),
    keyAuth(),
    jwtAuth({ algorithms: ["RS256"], jwksUrl: "https://login.example/.well-known/jwks.json", issuer: "https://login.example/", audience: "orders" }),
    authorize(),
    requestLimits({ maxBodyBytes: 1_048_576, timeoutMs: 10_000 }),
  ],
  routes: [
    // Global chain as is; global plugins run first, then this route's own plugins.
    { name: "orders-read", path: "/orders/*", methods: ["GET"], upstream: "orders", permission: "orders:read" },
    {
      name: "orders-write",
      path: "/orders-write/*",
      methods: ["POST", "PUT"],
      upstream: "orders",
      permission: { allOf: ["orders:read", "orders:write"] },
      plugins: [
        // Same name as a global plugin: replaces it in place, with these options.
        requestLimits({ maxBodyBytes: 65_536, contentTypes: ["application/json"], timeoutMs: 5_000 }),
        // Other names are appended after the global chain, in this order.
        requireIdempotencyKey({ groups: ["partner"] }),
        requireHeader({ header: "X-Client-Version" }),
      ],
    },
    {
      name: "partner",
      path: "/partner/*",
      upstream: "partner",
      permission: { anyOf: ["partner:call", "partner:admin"] },
      disablePlugins: ["cors", "jwt-auth"], // server-to-server, keys only
      plugins: [headers({ request: { set: { authorization: "Bearer {secret:PARTNER_TOKEN}" } }, response: { remove: ["server"] } })],
    },
  ],
});
