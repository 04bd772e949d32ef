/**
 * DNS over TLS (RFC 7858): the pipelined stream transport over node:tls, and
 * the TLS connect with the sidecar's trust rules, which DoH shares.
 *
 * Trust: the certificate is always verified (`rejectUnauthorized: true`)
 * against the upstream's TLS name (its host name, or an explicit name for an
 * upstream given by IP), with the system roots plus any extra CA; an optional
 * SPKI pin (RFC 7858 §4.2, base64 SHA-256 of the certificate's
 * SubjectPublicKeyInfo) must match too. A failure is UPSTREAM_TLS, never a
 * fallback to plain DNS. TLS sessions are resumed on reconnect.
 */
import { ipFamily } from '../net/ip.ts';
import type { OnReadOpts } from 'node:net';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { ErrorCodes } from '../errors.ts';
import { staticAddresses } from './bootstrap.ts';
import type { AddressSource } from './bootstrap.ts';
import { upstreamError } from './message.ts';
import { formatHostPort } from '../listener/address.ts';
import { StreamUpstream } from './stream.ts';
import type { StreamTuning } from './stream.ts';
import { cryptoModule, tlsModule } from '../runtime/builtins.ts';

/** How an encrypted upstream's certificate is checked. */
export interface TlsTrust {
  /** The name the certificate must carry (DNS name or IP); sent as SNI unless it is an IP. */
  readonly tlsName: string;
  /** Extra trusted CA certificates (PEM), added to the system roots. */
  readonly ca?: readonly Buffer[];
  /** Accepted SPKI pins: base64 SHA-256 of the SubjectPublicKeyInfo (DER); empty or absent: no pinning. */
  readonly spkiPin?: readonly string[];
}

/** The SPKI pin of a certificate: base64 SHA-256 of its SubjectPublicKeyInfo in DER. */
export function spkiPinOf(certDer: Buffer): string {
  const { createHash, X509Certificate } = cryptoModule();
  const spki = new X509Certificate(certDer).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ETIMEDOUT', 'EADDRINUSE']);

/** Parameters of {@link connectTls}. */
export interface TlsConnectParams {
  readonly host: string;
  readonly port: number;
  readonly trust: TlsTrust;
  readonly timeoutMs: number;
  /** For error messages: the upstream's URL. */
  readonly address: string;
  readonly alpn?: string[];
  /** A session from an earlier connection to resume (RFC 5077 / TLS 1.3 tickets). */
  readonly session?: Buffer;
  /** Called with each new session ticket the server sends. */
  readonly onSession?: (session: Buffer) => void;
  /** Read what arrives into one buffer and hand it to a callback instead of 'data' events (stream.ts's Connector). */
  readonly onread?: OnReadOpts;
}

/**
 * Opens a TLS connection to an IP with the trust rules above; resolves once
 * the handshake and checks passed. Rejects with UPSTREAM_CONNECT (TCP
 * failed), UPSTREAM_TLS (handshake, name, chain, expiry or pin) or
 * UPSTREAM_TIMEOUT. The caller owns the socket.
 */
export function connectTls(params: TlsConnectParams): Promise<TLSSocket> {
  const { host, port, trust, timeoutMs, address } = params;
  const pins = trust.spkiPin ?? [];
  const servername = ipFamily(trust.tlsName) ? undefined : trust.tlsName;
  return new Promise((resolve, reject) => {
    let tcpConnected = false;
    const tls = tlsModule();
    const socket = tls.connect({
      host,
      port,
      servername,
      rejectUnauthorized: true,
      ca: trust.ca && trust.ca.length > 0 ? [...tls.rootCertificates, ...trust.ca.map((b) => b.toString())] : undefined,
      session: params.session,
      ALPNProtocols: params.alpn,
      minVersion: 'TLSv1.2',
      ...(params.onread ? { onread: params.onread } : {}),
      checkServerIdentity: (_name: string, cert: PeerCertificate) => {
        const nameErr = tls.checkServerIdentity(trust.tlsName, cert);
        if (nameErr) return nameErr;
        if (pins.length > 0) {
          const pin = spkiPinOf(cert.raw);
          if (!pins.includes(pin)) return new Error(`SPKI pin ${pin} of the certificate matches none of the configured pins`);
        }
        return undefined;
      },
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(upstreamError(ErrorCodes.UPSTREAM_TIMEOUT, `${tcpConnected ? 'TLS handshake' : 'connecting'} (${timeoutMs} ms) with`, address));
    }, timeoutMs);
    socket.once('connect', () => {
      tcpConnected = true;
    });
    if (params.onSession) socket.on('session', params.onSession);
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      const plainConnect = !tcpConnected && CONNECT_ERRORS.has(err.code ?? '');
      reject(
        plainConnect
          ? upstreamError(ErrorCodes.UPSTREAM_CONNECT, 'connecting to', address, err)
          : upstreamError(ErrorCodes.UPSTREAM_TLS, `TLS handshake (${trust.tlsName}) with`, address, err),
      );
    });
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

/** Options of {@link DotUpstream}. */
export interface DotOptions extends StreamTuning {
  readonly trust: TlsTrust;
}

/**
 * A DoT upstream. `hosts` are the server's IP addresses (from bootstrap, or a
 * source that re-resolves them), tried in turn: a failed connect moves to
 * the next. `address` is its URL (`tls://dns.example:853`).
 */
export class DotUpstream extends StreamUpstream {
  readonly #counter: { resumed: number };
  readonly #source: AddressSource;

  constructor(address: string, hosts: readonly string[] | AddressSource, port: number, options: DotOptions) {
    let session: Buffer | undefined;
    let index = 0;
    const counter = { resumed: 0 };
    const source = 'addresses' in hosts ? hosts : staticAddresses(hosts);
    super(
      address,
      async (timeoutMs, onread) => {
        const list = source.addresses();
        const host = list[index % list.length]!;
        const at = formatHostPort({ host, port });
        try {
          const socket = await connectTls({
            host,
            port,
            trust: options.trust,
            timeoutMs,
            address: address === `tls://${at}` ? address : `${address} (${at})`,
            session,
            onread,
            onSession: (s) => {
              session = s;
            },
          });
          if (socket.isSessionReused()) counter.resumed++;
          return socket;
        } catch (err) {
          index++;
          throw err;
        }
      },
      options,
    );
    this.#counter = counter;
    this.#source = source;
  }

  /** Connections that resumed an earlier TLS session (for tests and diagnostics). */
  get sessionsResumed(): number {
    return this.#counter.resumed;
  }

  override async close(): Promise<void> {
    this.#source.close();
    await super.close();
  }
}
