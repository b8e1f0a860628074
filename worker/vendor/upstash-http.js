// @upstash/redis's REST client (HttpClient: auth header, Upstash-Encoding, read-your-writes sync
// token, error types) without its `Redis` class. The limiter sends one command (EVALSHA, EVAL
// once on NOSCRIPT: worker/limits/upstash.ts), but `Redis` carries ~200 command methods as class
// fields, which a bundler cannot tree-shake: 76 KB of the Worker bundle minified, 16 KB gzip,
// against 2 KB gzip for this client. The package exports HttpClient from its shared chunk only,
// whose file name is a build hash: when upgrading @upstash/redis (pinned exactly in
// package.json), point this at the chunk that defines `var HttpClient = class`
// (`grep -l "var HttpClient = class" node_modules/@upstash/redis/chunk-*.mjs`); the build fails
// to resolve a stale name, and the Upstash tests (test/integration/limits-*.test.ts) run it
// against the real local Redis through the REST bridge.
export { HttpClient } from "../../node_modules/@upstash/redis/chunk-4WQYU7T6.mjs";
