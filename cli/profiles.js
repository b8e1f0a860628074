// @ts-check
import { readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";
import { parse } from "yaml";
import { usageError } from "./errors.js";

/**
 * Where the profile file lives: $PORTCULLIS_CONFIG, else $XDG_CONFIG_HOME/portcullis/config.yaml
 * (~/.config/portcullis/config.yaml). YAML or JSON:
 *
 *   default: staging
 *   profiles:
 *     staging: { url: https://gw-staging.example.com, tokenEnv: STAGING_PORTCULLIS_TOKEN }
 *     prod:    { url: https://gw.example.com, token: "…" }   # file must then be private (chmod 600)
 */
export function configPath() {
  if (process.env.PORTCULLIS_CONFIG) return process.env.PORTCULLIS_CONFIG;
  const base = process.env.XDG_CONFIG_HOME || path.join(homedir(), ".config");
  return path.join(base, "portcullis", "config.yaml");
}

/** @param {string} file @returns {{ default?: string, profiles: Record<string, { url?: string, token?: string, tokenEnv?: string }> } | null} */
function readConfig(file) {
  let text;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if (/** @type {any} */ (err).code === "ENOENT") return null;
    throw usageError(`Cannot read ${file}: ${/** @type {Error} */ (err).message}`);
  }
  let doc;
  try {
    doc = parse(text);
  } catch (err) {
    throw usageError(`${file} is not valid YAML/JSON: ${/** @type {Error} */ (err).message}`);
  }
  if (!doc || typeof doc !== "object" || typeof doc.profiles !== "object") throw usageError(`${file} must have a "profiles" map.`);
  return doc;
}

/**
 * The gateway to talk to. Precedence: --url/--token, then an explicit --profile
 * (or PORTCULLIS_PROFILE), then PORTCULLIS_URL/PORTCULLIS_ADMIN_TOKEN, then the file's default profile.
 *
 * @param {{ url?: string, token?: string, profile?: string }} flags
 * @returns {{ url: string, token: string, source: string }}
 */
export function resolveTarget(flags) {
  const env = process.env;
  const file = configPath();
  const wanted = flags.profile ?? env.PORTCULLIS_PROFILE;
  /** @type {{ url?: string, token?: string, source: string }} */
  let fromProfile = { source: "" };
  const config = wanted || !(env.PORTCULLIS_URL && env.PORTCULLIS_ADMIN_TOKEN) ? readConfig(file) : null;
  const name = wanted ?? config?.default;
  if (wanted && !config) throw usageError(`Profile "${wanted}" requested but ${file} does not exist.`);
  if (name && config) {
    const p = config.profiles[name];
    if (!p) throw usageError(`No profile "${name}" in ${file} (have: ${Object.keys(config.profiles).join(", ") || "none"}).`);
    let token = p.token;
    if (p.tokenEnv) token = env[p.tokenEnv];
    else if (p.token) assertPrivate(file);
    fromProfile = { url: p.url, token, source: `profile ${name}` };
  }
  const explicitProfile = !!wanted;
  const url = flags.url ?? (explicitProfile ? fromProfile.url : undefined) ?? env.PORTCULLIS_URL ?? fromProfile.url;
  const token = flags.token ?? (explicitProfile ? fromProfile.token : undefined) ?? env.PORTCULLIS_ADMIN_TOKEN ?? fromProfile.token;
  if (!url) throw usageError(`No gateway URL: set PORTCULLIS_URL, pass --url, or add a profile to ${file}.`);
  if (!token) throw usageError(`No admin token: set PORTCULLIS_ADMIN_TOKEN, or use a profile with tokenEnv in ${file}.`);
  try {
    new URL(url);
  } catch {
    throw usageError(`Not a URL: ${url}`);
  }
  return { url, token, source: fromProfile.source || "environment" };
}

/** A token stored in a file other users can read is as good as leaked: refuse to use it. */
/** @param {string} file */
function assertPrivate(file) {
  if (process.platform === "win32") return;
  const mode = statSync(file).mode & 0o077;
  if (mode) throw usageError(`${file} holds a token but is readable by others: chmod 600 it (or use tokenEnv).`);
}
