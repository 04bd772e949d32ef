/**
 * The upstream contract (DESIGN §3): one interface, one file per transport,
 * `fromUrl` (in from-url.ts) picks the transport by URL scheme.
 */

/** A DNS server the sidecar forwards to. */
export interface Upstream {
  /**
   * The upstream as a URL of scheme, host and port only (`udp://10.0.0.10:53`,
   * `tls://dns.example:853`, `https://dns.example:443`; never user info, a
   * path or a query: redact.ts): its identity in logs, errors, /readyz and
   * the `upstream` metric label.
   */
  readonly address: string;
  /**
   * Sends `query` (a complete DNS message, not modified) and resolves with
   * the reply: a message whose ID equals the query's ID and whose question
   * matches the query's (RFC 5452), or rejects with a SidecarError
   * (UPSTREAM_TIMEOUT, UPSTREAM_CONNECT, UPSTREAM_BAD_REPLY, UPSTREAM_TLS,
   * UPSTREAM_HTTP, UPSTREAM_ABORTED, CLOSED). Safe to call concurrently.
   * Rejects with UPSTREAM_ABORTED when `signal` aborts; the caller sets the
   * deadline through the signal (e.g. AbortSignal.timeout).
   */
  exchange(query: Buffer, signal: AbortSignal): Promise<Buffer>;
  /** Closes sockets and fails pending exchanges with CLOSED. Idempotent. */
  close(): Promise<void>;
}
