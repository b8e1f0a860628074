// @ts-check
/**
 * Exit codes, so scripts can tell failures apart without parsing text.
 * Documented in the README's CLI section; never renumber.
 */
export const EXIT = Object.freeze({
  OK: 0,
  /** Something unexpected (a bug): the message says what. */
  FAILURE: 1,
  /** Bad command line, file or missing configuration: nothing was sent. */
  USAGE: 2,
  /** The gateway refused the admin token (401/403), or throttles it after wrong ones (429 ADMIN_THROTTLED). */
  AUTH: 3,
  /** The user, role or key does not exist (404). */
  NOT_FOUND: 4,
  /** The gateway rejected the request as invalid or conflicting (other 4xx). */
  REJECTED: 5,
  /** The gateway failed (5xx) or could not be reached. */
  SERVER: 6,
  /** `audit verify` found a broken hash chain link. */
  VERIFY_FAILED: 7,
  /** Done in part: some items succeeded, others failed (e.g. `limits reset`: a limit's backend did not answer); the output says which. */
  PARTIAL: 8,
});

/** An error the CLI reports and exits on, with its exit code and, from the gateway, the problem. */
export class CliError extends Error {
  /**
   * @param {string} message
   * @param {number} exitCode
   * @param {{ code?: string, requestId?: string, status?: number, errors?: Array<{ path: string, message: string }> }} [problem]
   */
  constructor(message, exitCode, problem = {}) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
    this.problem = problem;
  }
}

/**
 * @param {number} status
 * @param {string} [code] the problem's code
 */
export function exitCodeForStatus(status, code) {
  if (status === 401 || status === 403 || code === "ADMIN_THROTTLED") return EXIT.AUTH;
  if (status === 404) return EXIT.NOT_FOUND;
  if (status >= 500) return EXIT.SERVER;
  return EXIT.REJECTED;
}

/** @param {string} message */
export const usageError = (message) => new CliError(message, EXIT.USAGE);
