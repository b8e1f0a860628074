/** The two audit trails. */
export const AUDIT_LOG_NAMES = ["requests", "admin"] as const;
