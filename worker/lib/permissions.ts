/**
 * Permission strings look like `orders:read`; `*` in a granted permission matches any run of
 * characters (so `orders:*` grants `orders:read` and `orders:refund:create`, and `*` grants all).
 * A required permission is always literal.
 */
export const PERMISSION_PATTERN = /^[A-Za-z0-9_.:\-/*]{1,128}$/;

const compiled = new Map<string, RegExp>();

function toRegExp(granted: string): RegExp {
  let re = compiled.get(granted);
  if (!re) {
    const body = granted.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\/-]/g, "\\$&")).join(".*");
    re = new RegExp(`^${body}$`);
    // Granted permissions come from a bounded set (roles and key scopes), so this map stays small;
    // the cap only guards against pathological data.
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(granted, re);
  }
  return re;
}

/** Whether any of `granted` matches `required`. */
export function grants(granted: readonly string[], required: string): boolean {
  for (const g of granted) {
    if (g === required || (g.includes("*") && toRegExp(g).test(required))) return true;
  }
  return false;
}

/**
 * Whether a caller holding `rolePermissions`, through a key scoped to `keyScope` (null = no
 * scope-down), may do `required`. The key can only narrow: both sides must grant it.
 */
export function isPermitted(rolePermissions: readonly string[], keyScope: readonly string[] | null, required: string): boolean {
  return grants(rolePermissions, required) && (keyScope === null || grants(keyScope, required));
}
