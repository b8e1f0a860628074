import { describe, expect, it } from "vitest";
import { admin, gw, json, originRecords, seedCaller, unique } from "../helpers";

describe("smoke", () => {
  it("proxies a request with a fresh key", async () => {
    const { key } = await seedCaller();
    const marker = unique("smoke");
    const res = await gw(`/echo/${marker}?a=1`, { headers: { authorization: `Bearer ${key}` } });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.url).toBe(`/${marker}?a=1`);
    expect((await originRecords(marker)).length).toBe(1);
    const openapi = await gw("/admin/v1/openapi.json");
    expect(openapi.status).toBe(200);
    void admin;
  });
});
