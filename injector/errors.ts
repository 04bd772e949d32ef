/**
 * InjectorError: the one error type the injector throws on purpose, with a
 * stable `code` (logs, metrics and tests key on it) and the low-level error as
 * `cause`.
 */

/** The closed set of injector error codes. */
export const InjectorErrorCodes = {
  /** The injector's configuration failed validation or could not be read. */
  CONFIG_INVALID: 'CONFIG_INVALID',
  /** An AdmissionReview or manifest could not be understood. */
  BAD_REQUEST: 'BAD_REQUEST',
  /** A request body exceeded the size limit. */
  TOO_LARGE: 'TOO_LARGE',
  /** Too many admissions were waiting; the request was answered 429 without being read. */
  OVERLOADED: 'OVERLOADED',
  /** The pod could not be patched (an unexpected shape). */
  PATCH_FAILED: 'PATCH_FAILED',
  /** A Kubernetes API request failed or timed out. */
  KUBE_API: 'KUBE_API',
  /** TLS certificate or key could not be loaded. */
  TLS: 'TLS',
} as const;

/** One of {@link InjectorErrorCodes}. */
export type InjectorErrorCode = (typeof InjectorErrorCodes)[keyof typeof InjectorErrorCodes];

/** An error with a stable code; the message says what was being done to what. */
export class InjectorError extends Error {
  readonly code: InjectorErrorCode;
  constructor(code: InjectorErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InjectorError';
    this.code = code;
  }
}
