// docs/examples/response-timing-plugin.ts — acting on the response and after it.
import { bagSlot, definePlugin, waitUntil, z } from "../../worker/plugin-api";

/** Typed bag slot: how plugins hand data to each other within one request. */
export const startedAt = bagSlot<number>("response-timing.started-at");

export const responseTiming = definePlugin({
  name: "response-timing",
  config: z.strictObject({
    reportUrl: z.url().optional().describe("Where to POST timings after the response; default: only the header"),
  }),
  create: ({ reportUrl }) =>
    async function responseTiming(c, next) {
      startedAt.set(c, Date.now());
      await next(); // everything after this line runs on the way back out
      const ms = Date.now() - (startedAt.get(c) ?? Date.now());
      // c.res is the origin's response, or the problem a later plugin threw.
      c.res.headers.set("server-timing", `gateway;dur=${ms}`);
      if (reportUrl) {
        const body = JSON.stringify({ requestId: c.get("requestId"), route: c.get("route").name, user: c.get("identity")?.user.id ?? null, status: c.res.status, ms });
        // After the response: the client does not wait for this.
        waitUntil(c, fetch(reportUrl, { method: "POST", body, headers: { "content-type": "application/json" } }));
      }
    },
});
