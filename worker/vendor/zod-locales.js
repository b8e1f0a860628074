// The one locale the Worker ships (see zod-external.js): error messages are English.
export { default as en } from "../../node_modules/zod/v4/locales/en.js";
