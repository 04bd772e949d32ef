/**
 * Default upstreams from resolv.conf, and the start-up check that the
 * sidecar never forwards to itself.
 */
import { ipFamily } from '../net/ip.ts';
import { ErrorCodes, SidecarError } from '../errors.ts';
import { formatHostPort, type HostPort } from '../listener/address.ts';
import { osModule, readFileSync } from '../runtime/builtins.ts';

/** Whether an IP literal is a loopback address (127.0.0.0/8, ::1, ::ffff:127.x). */
export function isLoopback(ip: string): boolean {
  const v = ip.toLowerCase().replace(/^::ffff:/, '');
  return v === '::1' || /^127\./.test(v);
}

/**
 * `udp://ADDR:53` for every `nameserver` line of a resolv.conf text that is
 * not a loopback address (a loopback resolver would be the sidecar itself
 * once the pod points at 127.0.0.1).
 */
export function upstreamsFromResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const m = /^nameserver\s+(\S+)$/.exec(line);
    if (!m) continue;
    const ip = m[1]!.replace(/%.*$/, '');
    if (ipFamily(ip) === 0 || isLoopback(ip)) continue;
    out.push(`udp://${formatHostPort({ host: ip, port: 53 })}`);
  }
  return out;
}

/** Reads `path` and returns its non-loopback nameservers as upstream URLs. */
export function readResolvConf(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SidecarError(ErrorCodes.CONFIG_READ, `reading default upstreams from ${path}`, { cause: err });
  }
  return upstreamsFromResolvConf(text);
}

/** The addresses this machine answers on, for the wildcard case of {@link assertNoLoop}. */
function localAddresses(): Set<string> {
  const out = new Set<string>(['127.0.0.1', '::1']);
  for (const list of Object.values(osModule().networkInterfaces())) for (const a of list ?? []) out.add(a.address.toLowerCase());
  return out;
}

/**
 * Throws CONFIG_LOOP when a server the sidecar would send to (`what` names
 * it, e.g. `--cluster-dns`) is one of its own listen addresses: the same IP
 * and port, or a wildcard listener on that port and an address of this host.
 */
export function assertNoLoop(listen: readonly HostPort[], target: { host: string; port: number }, what: string): void {
  const host = target.host.toLowerCase();
  for (const l of listen) {
    if (l.port !== target.port) continue;
    const wildcard = l.host === '0.0.0.0' || l.host === '::';
    if (l.host.toLowerCase() === host || (wildcard && (isLoopback(host) || localAddresses().has(host)))) {
      throw new SidecarError(
        ErrorCodes.CONFIG_LOOP,
        `${what} ${formatHostPort(target)} is the sidecar's own listen address ${formatHostPort(l)}: queries would loop back to it`,
      );
    }
  }
}
