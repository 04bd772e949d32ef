/**
 * Upstream specs as written in config: a URL plus per-upstream options after
 * `#` (a fragment is never sent, so it cannot be mistaken for part of a DoH
 * path): `tls://10.0.0.1:853#tls-name=dns.example&spki-pin=BASE64`,
 * `https://dns.example/dns-query#method=get`.
 */
import { ErrorCodes, SidecarError } from '../errors.ts';

/** One upstream as configured. */
export interface UpstreamSpec {
  /** The URL without the options. */
  readonly url: string;
  /** The name the certificate must carry (for an upstream given by IP). */
  readonly tlsName?: string;
  /** Accepted SPKI pins (base64 SHA-256). */
  readonly spkiPins: readonly string[];
  /** DoH method. */
  readonly dohMethod?: 'POST' | 'GET';
}

/** Parses `url#opt=value&…`. Throws CONFIG_INVALID naming the spec for an unknown option. */
export function parseUpstreamSpec(text: string): UpstreamSpec {
  const hash = text.indexOf('#');
  if (hash < 0) return { url: text, spkiPins: [] };
  const url = text.slice(0, hash);
  const params = new URLSearchParams(text.slice(hash + 1));
  let tlsName: string | undefined;
  let dohMethod: 'POST' | 'GET' | undefined;
  const spkiPins: string[] = [];
  for (const [key, value] of params) {
    if (key === 'tls-name' && value) tlsName = value;
    else if (key === 'spki-pin' && value) spkiPins.push(value);
    else if (key === 'method' && /^(get|post)$/i.test(value)) dohMethod = value.toUpperCase() as 'POST' | 'GET';
    else
      throw new SidecarError(
        ErrorCodes.CONFIG_INVALID,
        `upstream ${text}: unknown option "${key}=${value}" (tls-name=NAME, spki-pin=BASE64, method=get|post)`,
      );
  }
  if (dohMethod && !url.startsWith('https://')) throw new SidecarError(ErrorCodes.CONFIG_INVALID, `upstream ${text}: method= is for https:// upstreams`);
  return { url, tlsName, spkiPins, dohMethod };
}
