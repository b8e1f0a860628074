import { encodeBase62, randomBase62 } from "./base62";
import { crc32 } from "./crc32";
import { hexDigest } from "./digest";

/** Every Portcullis key starts with this, so secret scanners can recognise a leaked one. */
export const KEY_PREFIX = "pcl_";
/** 24 base62 chars ≈ 142.9 bits of randomness (the floor we promise is 128). */
const RANDOM_LENGTH = 24;
const CHECKSUM_LENGTH = 6;
/** How much of a key is kept visible (prefix + 4 random chars) to tell keys apart. */
const START_LENGTH = KEY_PREFIX.length + 4;
const KEY_PATTERN = new RegExp(`^${KEY_PREFIX}[0-9A-Za-z]{${RANDOM_LENGTH + CHECKSUM_LENGTH}}$`);

const checksum = (body: string) => encodeBase62(crc32(body), CHECKSUM_LENGTH);

/**
 * A new key: prefix, random body, CRC-32 checksum (GitHub-token style).
 *
 * @example const { key, start } = generateApiKey(); // key = "pcl_…" (34 chars), start = "pcl_Ab3x"
 */
export function generateApiKey(): { key: string; start: string } {
  const body = KEY_PREFIX + randomBase62(RANDOM_LENGTH);
  const key = body + checksum(body);
  return { key, start: key.slice(0, START_LENGTH) };
}

/**
 * True when `candidate` has the key shape and its checksum matches. Pure CPU: a typo or
 * a random string is refused here without any D1 lookup.
 */
export function isWellFormedApiKey(candidate: string): boolean {
  if (!KEY_PATTERN.test(candidate)) return false;
  const body = candidate.slice(0, -CHECKSUM_LENGTH);
  return checksum(body) === candidate.slice(-CHECKSUM_LENGTH);
}

/** SHA-256 of the key, hex. This (never the key) is what D1 stores and the cache is keyed by. */
export async function hashApiKey(key: string): Promise<string> {
  return hexDigest("SHA-256", key);
}
