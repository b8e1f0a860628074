import { beforeAll, describe, expect, it } from "vitest";
import { keyAuth } from "../../plugins/key-auth";
import { definePlugin, z } from "../../worker/plugin-api";
import { originRecords, seedCaller, testGateway, unique } from "../helpers";

/**
 * The identity headers an origin receives are the gateway's identity for this request, or none.
 * Clients cannot send `x-portcullis-*` (dropped on the way in), but a plugin can set them on the
 * forwarded headers; the forwarder used to write its own over them without clearing the rest, so
 * a plugin's `x-portcullis-user-group` reached the origin for a user without a group, and every
 * identity header a plugin set reached an upstream with `identityHeaders: false`.
 */
const FORGED = {
  "x-portcullis-user-id": "usr_forged",
  "x-portcullis-user-name": "forged-admin",
  "x-portcullis-user-group": "internal",
  "x-portcullis-key-id": "key_forged",
};
const IDENTITY = Object.keys(FORGED);

/** A careless or hostile plugin: sets (and appends to) every identity header. */
const forger = definePlugin({
  name: "forger",
  config: z.strictObject({}),
  create: () => async (c, next) => {
    const h = c.get("upstreamHeaders");
    for (const [name, value] of Object.entries(FORGED)) {
      h.set(name, value);
      h.append(name, `${value}-2`);
    }
    await next();
  },
});

const call = testGateway({
  routes: [
    // `echo` sends identity headers; `prefixed` stands for a third-party API (`identityHeaders: false`).
    { name: "ih-echo", path: "/ih-echo/*", upstream: "echo", plugins: [keyAuth(), forger()] },
    { name: "ih-third-party", path: "/ih-third-party/*", upstream: "prefixed", plugins: [keyAuth(), forger()] },
    { name: "ih-anonymous", path: "/ih-anonymous/*", upstream: "echo", plugins: [forger()] },
  ],
});

let plain: Awaited<ReturnType<typeof seedCaller>>;
let grouped: Awaited<ReturnType<typeof seedCaller>>;
beforeAll(async () => {
  plain = await seedCaller();
  grouped = await seedCaller({ group: "partner" });
});

/** The x-portcullis-* identity headers the origin received for one call. */
async function received(route: string, key?: string) {
  const marker = unique("ih");
  const res = await call(`/${route}/${marker}`, { headers: key ? { "x-api-key": key } : {} });
  expect(res.status).toBe(200);
  const [rec] = await originRecords(marker);
  expect(rec).toBeDefined();
  return Object.fromEntries(Object.entries(rec!.headers).filter(([name]) => IDENTITY.includes(name)));
}

describe("identity headers a plugin sets never reach the origin", () => {
  it("a user without a group: the origin gets its id, name and key, and no group", async () => {
    expect(await received("ih-echo", plain.key)).toEqual({
      "x-portcullis-user-id": plain.user.id,
      "x-portcullis-user-name": plain.user.name,
      "x-portcullis-key-id": plain.keyId,
    });
  });

  it("a user with a group: exactly the gateway's four values, one each", async () => {
    expect(await received("ih-echo", grouped.key)).toEqual({
      "x-portcullis-user-id": grouped.user.id,
      "x-portcullis-user-name": grouped.user.name,
      "x-portcullis-user-group": "partner",
      "x-portcullis-key-id": grouped.keyId,
    });
  });

  it("an upstream with identityHeaders: false gets none of them", async () => {
    expect(await received("ih-third-party", grouped.key)).toEqual({});
  });

  it("a route without an authenticator (no identity) forwards none of them", async () => {
    expect(await received("ih-anonymous")).toEqual({});
  });
});
