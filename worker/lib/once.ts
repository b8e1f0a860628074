/**
 * A value built on first use, then kept. For work a cold isolate should not pay before its first
 * request when most isolates never need it: the admin API's and dashboard's zod schemas are
 * ~40% of the Worker's start-up (bench/README.md, "Start-up"), and an isolate serving proxy
 * traffic never builds them.
 *
 * @example export const adminSchemas = once(() => ({ user: z.object({ … }) }));
 */
export function once<T>(build: () => T): () => T {
  let built = false;
  let value: T;
  return () => {
    if (!built) {
      value = build();
      built = true;
    }
    return value;
  };
}
