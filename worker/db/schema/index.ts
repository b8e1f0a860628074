export * from "./proxy-users";
export * from "./roles";
export * from "./api-keys";
export * from "./admin-audit";
export * from "./audit";
export * from "./origin-secrets";
export * from "./limits";
export * from "./admin-sessions";
