import { spawn } from "node:child_process";
import path from "node:path";
import { inject } from "vitest";

const BIN = path.resolve(import.meta.dirname, "../../bin/portcullis.mjs");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `portcullis …` as a real subprocess (as `npx portcullis` would), against the e2e gateway
 * unless `env` says otherwise. No TTY: stdin is a pipe (optionally fed `input`), output is captured.
 */
export function cli(args: string[], opts: { env?: Record<string, string | undefined>; input?: string } = {}): Promise<CliResult> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    PORTCULLIS_URL: inject("gatewayUrl"),
    PORTCULLIS_ADMIN_TOKEN: inject("adminToken"),
    PORTCULLIS_CONFIG: "/nonexistent/portcullis.yaml",
    ...opts.env,
  })) {
    if (v !== undefined) env[k] = v;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(opts.input ?? "");
  });
}

/** Parses `--json` output, failing with the CLI's stderr when the command did not succeed. */
export async function cliJson<T = any>(args: string[], opts: Parameters<typeof cli>[1] = {}): Promise<T> {
  const r = await cli([...args, "--json"], opts);
  if (r.code !== 0) throw new Error(`portcullis ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

let n = 0;
export const uniqueName = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${(n++).toString(36)}`;

/** A request through the gateway's proxy with a key, as a client would send it. */
export const proxy = (pathname: string, key: string) => fetch(`${inject("gatewayUrl")}${pathname}`, { headers: { authorization: `Bearer ${key}` } });
