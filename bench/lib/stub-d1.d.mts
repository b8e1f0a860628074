/** The micro-benchmarks' D1 stand-in (stub-d1.mjs): refuses reads and batches, accepts `update` writes. */
export declare function stubD1(onWrite?: () => void): D1Database;
