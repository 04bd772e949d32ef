/**
 * Upstream specs as written in config: a URL plus per-upstream options after
 * `#` (a fragment is never sent, so it cannot be mistaken for part of a DoH
 * path): `tls://10.0.0.1:853#tls-name=dns.example&spki-pin=BASE64`,
 * `https://dns.example/dns-query#method=get`.
 */
import { ipFamily } from '../net/ip.ts';
import { ErrorCodes, SidecarError } from '../errors.ts';
import { DEFAULT_PORTS, showUrl } from '../redact.ts';

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
      // The option's value is not repeated: an unknown option may be a secret put in the wrong place.
      throw new SidecarError(ErrorCodes.CONFIG_INVALID, `upstream ${showUrl(url)}: unknown option "${key}" (tls-name=NAME, spki-pin=BASE64, method=get|post)`);
  }
  if (dohMethod && !url.startsWith('https://')) throw new SidecarError(ErrorCodes.CONFIG_INVALID, `upstream ${showUrl(url)}: method= is for https:// upstreams`);
  return { url, tlsName, spkiPins, dohMethod };
}

/** The per-upstream options a `#` fragment may hold. */
const OPTION_KEYS: ReadonlySet<string> = new Set(['tls-name', 'spki-pin', 'method']);

/**
 * Whether a URL fragment holds only per-upstream options (tls-name,
 * spki-pin, method): public settings, which /config may show.
 */
export function onlyOptions(fragment: string): boolean {
  for (const key of new URLSearchParams(fragment).keys()) if (!OPTION_KEYS.has(key)) return false;
  return true;
}


/** An upstream URL read and checked: its URL, host (no brackets) and port. */
export interface CheckedUrl {
  readonly u: URL;
  readonly host: string;
  readonly port: number;
}

/**
 * Checks the shape of an upstream URL (without its `#` options): a known
 * scheme, no credentials, a port in range, a host, no path but for https://,
 * an IP address for plain DNS. Returns the reason it cannot be used, or the
 * parts. Pure: shared by {@link fromUrl} and the policy's validation (which
 * cannot know the bootstrap addresses a host name needs).
 */
export function checkUpstreamUrl(url: string): CheckedUrl | string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // The URL parser refuses a port over 65535 outright: say which part is wrong.
    const port = /:(\d+)(?:[/?#]|$)/.exec(url.replace(/^[a-z]+:\/\//, ''))?.[1];
    return port !== undefined && Number(port) > 65535 ? `bad port ${port}` : 'not a URL';
  }
  const defaultPort = DEFAULT_PORTS[u.protocol];
  if (defaultPort === undefined) return `unknown scheme ${u.protocol} (udp://, tcp://, tls://, https://)`;
  if (u.username || u.password) return 'credentials are not allowed';
  // WHATWG URL drops a default port only for special schemes (https); read it ourselves.
  const port = u.port === '' ? defaultPort : Number(u.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return `bad port ${u.port}`;
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  if (host === '') return 'no host';
  if (u.protocol !== 'https:' && ((u.pathname !== '' && u.pathname !== '/') || u.search || u.hash)) {
    return 'a path, query or fragment is only meaningful for https://';
  }
  if ((u.protocol === 'udp:' || u.protocol === 'tcp:') && ipFamily(host) === 0) return 'plain DNS upstreams need an IP address, not a host name';
  return { u, host, port };
}
