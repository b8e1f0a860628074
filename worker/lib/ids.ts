import { randomBase62 } from "./base62";

/** Type prefixes make an id say what it names (`usr_…` can never be passed where `key_…` is meant). */
export const idPrefixes = { user: "usr", role: "rol", key: "key", adminEvent: "aev", secret: "sec", session: "ses" } as const;
export type IdKind = keyof typeof idPrefixes;

/**
 * A prefixed id whose body sorts by creation time: 9 base36 chars of milliseconds
 * (good until the year 5188) followed by 12 random base62 chars. Sorting ids therefore
 * sorts by creation, which keeps cursor pagination a plain `id < cursor` query.
 *
 * @example newId("user") // "usr_0mj1x2k3a7Hq9ZkLwP0b"
 */
export function newId(kind: IdKind, now = Date.now()): string {
  return `${idPrefixes[kind]}_${now.toString(36).padStart(9, "0")}${randomBase62(12)}`;
}
