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
 * The URL and the token always come as a pair from one place: a profile's token is never sent to a
 * URL from a flag or the environment (nor a flag's or the environment's token to a profile's URL),
 * and a profile whose tokenEnv is unset does not fall back to PORTCULLIS_ADMIN_TOKEN. Half a pair
 * is a usage error: otherwise PORTCULLIS_URL alone would send the default (say, prod) profile's
 * token to whatever it points at. Flags and environment variables count as given explicitly and
 * pair with each other (`--url` with $PORTCULLIS_ADMIN_TOKEN), except with an explicit profile.
 *
 * @param {{ url?: string, token?: string, profile?: string }} flags
 * @returns {{ url: string, token: string, source: string }}
 */
export function resolveTarget(flags) {
  const env = process.env;
  const file = configPath();
  const wanted = flags.profile ?? env.PORTCULLIS_PROFILE;
  // An explicit profile outranks the environment, so then only flags are given explicitly.
  const url = flags.url ?? (wanted ? undefined : env.PORTCULLIS_URL);
  const token = flags.token ?? (wanted ? undefined : env.PORTCULLIS_ADMIN_TOKEN);
  if (url && token) return checked(url, token, flags.url || flags.token ? "flags" : "environment");

  const config = readConfig(file);
  if (wanted && !config) throw usageError(`Profile "${wanted}" requested but ${file} does not exist.`);
  const name = wanted ?? config?.default;
  if (!name || !config) {
    if (!url) throw usageError(`No gateway URL: set PORTCULLIS_URL, pass --url, or add a profile to ${file}.`);
    throw usageError(`No admin token: set PORTCULLIS_ADMIN_TOKEN, or use a profile with tokenEnv in ${file}.`);
  }
  if (url || token) {
    const given = url ? (flags.url ? "--url" : "PORTCULLIS_URL") : flags.token ? "--token" : "PORTCULLIS_ADMIN_TOKEN";
    const missing = url ? (wanted ? "--token" : "an admin token (--token or PORTCULLIS_ADMIN_TOKEN)") : wanted ? "--url" : "a gateway URL (--url or PORTCULLIS_URL)";
    throw usageError(
      `${given} is given without ${missing}: the URL and token must come from one place, so profile "${name}"'s ${url ? "token" : "URL"} is not used with it. ` +
        `Give both, or neither to use profile "${name}".`,
    );
  }
  const p = config.profiles[name];
  if (!p) throw usageError(`No profile "${name}" in ${file} (have: ${Object.keys(config.profiles).join(", ") || "none"}).`);
  if (!p.url) throw usageError(`Profile "${name}" in ${file} has no url.`);
  if (p.tokenEnv) {
    const fromEnv = env[p.tokenEnv];
    if (!fromEnv) throw usageError(`Profile "${name}" takes its token from $${p.tokenEnv}, which is not set.`);
    return checked(p.url, fromEnv, `profile ${name}`);
  }
  if (!p.token) throw usageError(`Profile "${name}" in ${file} has neither token nor tokenEnv.`);
  assertPrivate(file);
  return checked(p.url, p.token, `profile ${name}`);
}

/** @param {string} url @param {string} token @param {string} source */
function checked(url, token, source) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    throw usageError(`Not a URL: ${url}`);
  }
  // "localhost:8787" parses as a URL whose scheme is "localhost:": without this, it failed as an
  // unreachable gateway (exit 6) rather than as the configuration mistake it is.
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw usageError(`Not an http(s) URL: ${url} (from ${source}; e.g. http://127.0.0.1:8787).`);
  return { url, token, source };
}

/** A token stored in a file other users can read is as good as leaked: refuse to use it. */
/** @param {string} file */
function assertPrivate(file) {
  if (process.platform === "win32") return;
  const mode = statSync(file).mode & 0o077;
  if (mode) throw usageError(`${file} holds a token but is readable by others: chmod 600 it (or use tokenEnv).`);
}
