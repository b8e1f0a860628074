import { describe, expect, it } from "vitest";
import { GatewayError } from "../errors";
import { buildUpstreamUrl, nonCanonicalReason, rawPathOf } from "./upstream-url";

describe("buildUpstreamUrl", () => {
  it("joins base path, remainder and query", () => {
    expect(buildUpstreamUrl("https://api.example/v2", "/orders/7", "?x=1").toString()).toBe("https://api.example/v2/orders/7?x=1");
    expect(buildUpstreamUrl("https://api.example/v2/", "/orders", "").toString()).toBe("https://api.example/v2/orders");
    expect(buildUpstreamUrl("https://api.example", "", "").toString()).toBe("https://api.example/");
    expect(buildUpstreamUrl("https://api.example/v2", "", "?q").toString()).toBe("https://api.example/v2?q");
    expect(buildUpstreamUrl("http://127.0.0.1:8788", "/@evil.example/x", "").toString()).toBe("http://127.0.0.1:8788/@evil.example/x");
  });

  it("gives the same URL as the parser would, with or without the plain-path shortcut", () => {
    for (const [remainder, search] of [["/orders/7", "?x=1&y=%20"], ["/a:b@c/d!$&'()*+,=~_.-", ""], ["/caf%C3%A9", "?q=%E2%82%AC"], ["", "?q"], ["/x", "?"]]) {
      const built = buildUpstreamUrl("https://api.example/v2", remainder!, search!);
      expect(built).toBe(new URL(built).href);
      expect(new URL(built).origin).toBe("https://api.example");
    }
  });

  it("refuses a remainder the URL parser would rewrite (characters outside RFC 3986 paths)", () => {
    for (const remainder of ["/a b", "/caf\u00e9", "/a\"b", "/a<b>", "/a{b}", "/a`b"]) {
      expect(() => buildUpstreamUrl("https://api.example/v2", remainder, ""), remainder).toThrow(GatewayError);
    }
  });

  it.each(["@evil.example/x", "//evil.example/x", "/\\evil.example", "/..", "/a/../../b", "/%2e%2e/x", "/a%2fb", "/a;b", "/./x", "/a/%00", "/%c0%ae%c0%ae/x", "/%C0%AF", "/%c1%9c", "/%e0%80%ae", "/%f0%80%80%af"])(
    "refuses remainder %s",
    (remainder) => {
      expect(() => buildUpstreamUrl("https://api.example/v2", remainder, "")).toThrow(GatewayError);
    },
  );
});

describe("nonCanonicalReason / rawPathOf", () => {
  it("reads the raw path without decoding it", () => {
    expect(rawPathOf("https://h.example/a/%2e%2e/b?x=/../")).toBe("/a/%2e%2e/b");
    expect(rawPathOf("https://h.example")).toBe("/");
    expect(rawPathOf("https://h.example/a#frag")).toBe("/a");
  });
  it("accepts ordinary paths and refuses tricky ones", () => {
    expect(nonCanonicalReason("/orders/7/items-2.json")).toBeNull();
    expect(nonCanonicalReason("/a%20b")).toBeNull();
    // Valid UTF-8 stays allowed; only the overlong (never valid) forms are refused.
    expect(nonCanonicalReason("/caf%C3%A9/%e2%82%ac/%f0%9f%98%80")).toBeNull();
    for (const p of ["/a//b", "/a/./b", "/a/../b", "/a/%2E", "/a%5Cb", "/a\\b", "/a;x", "/a%25", "/a\u0000"]) expect(nonCanonicalReason(p), p).not.toBeNull();
  });
});
