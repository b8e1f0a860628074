/** A value built on first use, then kept; `built` tells whether that has happened yet. */
export interface Once<T> {
  (): T;
  readonly built: boolean;
}

/**
 * A value built on first use, then kept. For work a cold isolate should not pay before its first
 * request when most isolates never need it: the admin API's and dashboard's zod schemas were
 * ~40% of the Worker's start-up (bench/README.md, "Start-up"), and an isolate serving proxy
 * traffic never builds them. A build that throws is tried again on the next call.
 *
 * @example export const adminSchemas = once(() => ({ user: z.object({ … }) }));
 */
export function once<T>(build: () => T): Once<T> {
  let built = false;
  let value: T;
  const get = () => {
    if (!built) {
      value = build();
      built = true;
    }
    return value;
  };
  return Object.defineProperty(get, "built", { get: () => built }) as Once<T>;
}
