/** The origin's ~200-byte JSON answer (body.mjs), for the benchmark worker's TypeScript. */
export declare const ORIGIN_BODY: string;
