/**
 * SidecarError: the one error type the sidecar throws on purpose.
 *
 * Every error carries a stable `code` from a closed set (logs, metrics and
 * tests key on it) and a message saying what was being done to what, with the
 * low-level error as `cause`.
 */

/** The closed set of stable error codes. */
export const ErrorCodes = {
  /** Configuration or policy failed validation. */
  CONFIG_INVALID: 'CONFIG_INVALID',
  /** A file could not be read. */
  CONFIG_READ: 'CONFIG_READ',
  /** An upstream or the cluster DNS is one of the sidecar's own listen addresses. */
  CONFIG_LOOP: 'CONFIG_LOOP',
  /** A listener could not bind. */
  LISTEN_FAILED: 'LISTEN_FAILED',
  /** An upstream did not answer within its deadline. */
  UPSTREAM_TIMEOUT: 'UPSTREAM_TIMEOUT',
  /** The connection to an upstream was refused, reset or closed early. */
  UPSTREAM_CONNECT: 'UPSTREAM_CONNECT',
  /** An upstream sent a reply that is not a valid answer to the query. */
  UPSTREAM_BAD_REPLY: 'UPSTREAM_BAD_REPLY',
  /** TLS handshake or certificate verification failed. */
  UPSTREAM_TLS: 'UPSTREAM_TLS',
  /** An HTTP-level failure talking to a DoH upstream (status, content type). */
  UPSTREAM_HTTP: 'UPSTREAM_HTTP',
  /** The exchange was aborted by the caller. */
  UPSTREAM_ABORTED: 'UPSTREAM_ABORTED',
  /** Every upstream of a group failed. */
  UPSTREAM_GROUP_FAILED: 'UPSTREAM_GROUP_FAILED',
  /** Every upstream of a group that answered said SERVFAIL. */
  UPSTREAM_SERVFAIL: 'UPSTREAM_SERVFAIL',
  /** A forward zone's upstreams cannot be used (its names are answered SERVFAIL, never sent elsewhere). */
  FORWARD_ZONE_UNUSABLE: 'FORWARD_ZONE_UNUSABLE',
  /** A limit (in-flight queries, connections) was reached. */
  OVERLOADED: 'OVERLOADED',
  /** A query came back to the sidecar that sent it. */
  FORWARDING_LOOP: 'FORWARDING_LOOP',
  /** An upstream was closed and can no longer be used. */
  CLOSED: 'CLOSED',
  /** `tenant-dns capture` could not install or list its nftables rules. */
  CAPTURE_FAILED: 'CAPTURE_FAILED',
  /** An invariant was broken: a bug. */
  INTERNAL: 'INTERNAL',
} as const;

/** One of {@link ErrorCodes}. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** An Extended DNS Error (RFC 8914): INFO-CODE and EXTRA-TEXT. */
export interface ErrorEde {
  readonly code: number;
  readonly text: string;
}

/** What a {@link SidecarError} takes besides its code and message. */
export interface SidecarErrorOptions {
  /** The low-level error. */
  readonly cause?: unknown;
  /**
   * The Extended DNS Error the client's SERVFAIL carries when this error ends
   * a query (pipeline/compose.ts); without it, the composer picks one by code.
   */
  readonly ede?: ErrorEde;
  /**
   * An upstream's OPT record holding only its Extended DNS Errors (as
   * dns/records.ts `stripOpt` keeps it): the client's SERVFAIL carries them
   * beside the sidecar's own (RFC 8914).
   */
  readonly carriedOpt?: Buffer;
}

/** An error with a stable code and the low-level error as its cause. */
export class SidecarError extends Error {
  readonly code: ErrorCode;
  /** The Extended DNS Error for the client, when the thrower knows a better one than the code's. */
  readonly ede: ErrorEde | undefined;
  /** The upstream's EDE-only OPT record, when an upstream's answer ended the query. */
  readonly carriedOpt: Buffer | undefined;

  constructor(code: ErrorCode, message: string, options?: SidecarErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SidecarError';
    this.code = code;
    this.ede = options?.ede;
    this.carriedOpt = options?.carriedOpt;
  }
}

/** The stable code of any thrown value: its own if it is a SidecarError, else INTERNAL. */
export function errorCode(err: unknown): ErrorCode {
  return err instanceof SidecarError ? err.code : ErrorCodes.INTERNAL;
}

/** A one-line description of an error and its causes, for logs. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur !== undefined && cur !== null && depth < 5; depth++) {
    if (cur instanceof Error) {
      parts.push(cur.message);
      cur = cur.cause;
    } else {
      parts.push(String(cur));
      break;
    }
  }
  return parts.join(': ');
}
