const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/**
 * `length` base62 characters from `crypto.getRandomValues`, without modulo bias:
 * bytes ≥ 248 (the largest multiple of 62 below 256) are thrown away and redrawn.
 */
export function randomBase62(length: number): string {
  let out = "";
  while (out.length < length) {
    const bytes = crypto.getRandomValues(new Uint8Array(length * 2));
    for (const b of bytes) {
      if (b < 248) out += ALPHABET[b % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

/** Fixed-width base62 of an unsigned 32-bit integer (6 chars cover 2^32). */
export function encodeBase62(value: number, width: number): string {
  let n = value >>> 0;
  let out = "";
  do {
    out = ALPHABET[n % 62] + out;
    n = Math.floor(n / 62);
  } while (n > 0);
  return out.padStart(width, "0");
}
