#!/usr/bin/env node
// Fallback origin for machines without nginx (CI's smoke run): answers every request with the
// same ~200-byte JSON body the nginx origin serves. `node origin.mjs <port>`.
import http from "node:http";
import { ORIGIN_BODY } from "./body.mjs";

const body = Buffer.from(ORIGIN_BODY);
const port = Number(process.argv[2]);
const server = http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
  res.end(body);
});
server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1", () => process.stdout.write("ready\n"));
