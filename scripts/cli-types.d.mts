/** Types for scripts/cli-types.mjs. */
export const CLI_TYPES_FILE: string;
export function renderAdminApiTypes(doc: unknown): Promise<string>;
