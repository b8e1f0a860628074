// docs/examples/minimal-plugin.ts — the smallest useful plugin.
import { definePlugin, GatewayError, z } from "../../worker/plugin-api";

export const requireHeader = definePlugin({
  // The name routes use to disable or override it. Keep it stable: it is public.
  name: "require-header",
  // Options: parsed once when gateway.config.ts loads. Describe every field; default what you can.
  config: z.strictObject({
    header: z.string().regex(/^[A-Za-z0-9-]+$/).describe("Header every request must carry"),
    forward: z.boolean().default(true).describe("Send the header on to the origin"),
  }),
  // Runs once per config load; returns the per-request middleware (an ordinary Hono middleware).
  create: ({ header, forward }) =>
    async function requireHeader(c, next) {
      const value = c.req.header(header);
      // Rejecting = throwing a GatewayError: problem+json, nothing behind this plugin runs,
      // nothing reaches the origin.
      if (!value) throw new GatewayError("BAD_REQUEST", `The ${header} header is required.`);
      // Edit what the origin will receive through the upstreamHeaders variable, not c.req.
      if (!forward) c.get("upstreamHeaders").delete(header);
      await next();
    },
});
