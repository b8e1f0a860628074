// What test/node/security-setup.ts provides (declared there too, for the node-side typecheck).
declare module "vitest" {
  export interface ProvidedContext {
    faultPort: number;
    faultControlPort: number;
    rawDirectPort: number;
    rawEntryPort: number;
    rawDriverPort: number;
    rawOriginPort: number;
  }
}
export {};
