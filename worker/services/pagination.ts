import { GatewayError } from "../errors";

/** Cursors are opaque to clients: base64url of the last id on the page. */
export const encodeCursor = (id: string) => btoa(id).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");

export function decodeCursor(cursor: string): string {
  try {
    const id = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    if (/^[a-z]{3}_[0-9A-Za-z]+$/.test(id)) return id;
  } catch {
    // fall through to the error below
  }
  throw new GatewayError("VALIDATION_FAILED", "The cursor is not valid.", { errors: [{ path: "cursor", message: "invalid cursor" }] });
}

/** Given `limit + 1` rows, the page and the cursor for the next one. */
export function page<T extends { id: string }>(rows: T[], limit: number): { rows: T[]; nextCursor: string | null } {
  if (rows.length <= limit) return { rows, nextCursor: null };
  const pageRows = rows.slice(0, limit);
  return { rows: pageRows, nextCursor: encodeCursor(pageRows[pageRows.length - 1]!.id) };
}
