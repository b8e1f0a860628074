#!/usr/bin/env node
// The `portcullis` CLI (see README "CLI"). Plain ESM + JSDoc so it runs on Node 20 with no build step.
import { run } from "../cli/main.js";

process.exitCode = await run(process.argv);
