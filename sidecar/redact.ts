/**
 * Redaction of URLs: the one form in which an upstream URL is shown
 * (`scheme://host:port`: no user info, path, query or fragment), and the
 * redaction of every such URL inside a text (log lines, error messages,
 * /config). A DoH upstream `https://u:p@dns.example/dns-query/profile-SECRET?api_key=SECRET`
 * shows as `https://dns.example:443`; the full URL stays inside the
 * transport that connects to it (DESIGN §6: upstream labels are redacted).
 */

/** The port of each upstream scheme (as `URL#protocol` spells it) when a URL gives none. */
export const DEFAULT_PORTS: Readonly<Record<string, number>> = { 'udp:': 53, 'tcp:': 53, 'tls:': 853, 'https:': 443 };

/** The text shown in place of something that cannot be shown safely. */
export const REDACTED = '[redacted]';

/** `scheme://authority` at the start of a URL; the authority ends at the first `/`, `?` or `#`. */
const HEAD = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)/i;

/**
 * The displayed form of a URL: `scheme://host:port`, the scheme's default
 * port filled in (udp and tcp 53, tls 853, https 443), user info, path, query
 * and fragment left out. A text that is not a URL shows as `[redacted]`.
 * Pure; never throws.
 */
export function redactUrl(url: string): string {
  const m = HEAD.exec(url);
  if (m === null) return REDACTED;
  const scheme = m[1]!.toLowerCase();
  const authority = m[2]!.slice(m[2]!.lastIndexOf('@') + 1);
  let host = authority;
  let port = '';
  try {
    const u = new URL(`${scheme}://${authority}`);
    host = u.hostname;
    port = u.port;
  } catch {
    // Not a valid authority (a port out of range): show it as written, without the user info.
    return `${scheme}://${authority}`;
  }
  const fallback = DEFAULT_PORTS[`${scheme}:`];
  if (port === '' && fallback !== undefined) port = String(fallback);
  return port === '' ? `${scheme}://${host}` : `${scheme}://${host}:${port}`;
}

/**
 * Whether a URL shows nothing beyond scheme, host and port: no user info,
 * and no path (but `/`), query or fragment.
 */
function bare(url: string): boolean {
  const m = HEAD.exec(url);
  if (m === null) return false;
  const tail = url.slice(m[0].length);
  return !m[2]!.includes('@') && (tail === '' || tail === '/');
}

/**
 * A URL to show in a message: as written when it shows nothing beyond
 * scheme, host and port (`udp://10.0.0.53:70000` stays, so a message can
 * name what is wrong with it), else {@link redactUrl}'s form. Any scheme.
 */
export function showUrl(url: string): string {
  return bare(url) ? url : redactUrl(url);
}

/**
 * URLs inside a text, of any scheme but file: (paths of local files are
 * not secrets): up to whitespace, a quote or a backslash (JSON escapes).
 */
const IN_TEXT = /\b(?!file:)[a-z][a-z0-9+.-]*:\/\/[^\s"'<>\\]+/gi;
/** Punctuation that ends a sentence rather than a URL ("… https://x/y: refused", "(tls://a, …)"). */
const TRAILING = /[.,;:)]+$/;

/**
 * `text` with every URL (udp://, tcp://, tls://, https://, any scheme but
 * file:) that shows more than scheme, host and port replaced by {@link redactUrl}'s
 * form. `keepFragment` may keep a URL's `#…` part (the public per-upstream
 * options, for /config); by default it goes too. URLs with nothing to hide
 * are left as written.
 */
export function redactUrls(text: string, keepFragment?: (fragment: string) => boolean): string {
  if (!text.includes('://')) return text;
  return text.replace(IN_TEXT, (found) => {
    let url = found;
    let after = '';
    const trailing = TRAILING.exec(url);
    if (trailing !== null) {
      url = url.slice(0, trailing.index);
      after = trailing[0];
    }
    if (bare(url)) return found;
    const hash = url.indexOf('#');
    const fragment = hash < 0 ? '' : url.slice(hash + 1);
    const kept = fragment !== '' && keepFragment?.(fragment) === true ? `#${fragment}` : '';
    return redactUrl(url) + kept + after;
  });
}
