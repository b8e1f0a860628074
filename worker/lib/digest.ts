const encoder = new TextEncoder();

/**
 * The hex digest of a UTF-8 string, through WebCrypto: SHA-256 for key hashes and the audit
 * chain, SHA-1 for the id Redis gives a Lua script (EVALSHA).
 */
export async function hexDigest(algorithm: "SHA-1" | "SHA-256", text: string): Promise<string> {
  const digest = await crypto.subtle.digest(algorithm, encoder.encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}
