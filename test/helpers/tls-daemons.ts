/**
 * dnsdist and knot-resolver (Debian's packages) serving plain DNS, DoT and
 * DoH on loopback ports with a test key pair, forwarding to a backend on
 * loopback. Neither phones home: dnsdist's security polling is off, kresd's
 * trust anchor and priming modules are unloaded.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from './daemon.ts';
import { freePort } from './ports.ts';

/** A daemon serving plain DNS, DoT and DoH. */
export interface TlsDaemon {
  readonly name: string;
  readonly plainPort: number;
  readonly tlsPort: number;
  readonly httpsPort: number;
  stop(): Promise<void>;
}

/** The test key pair files. */
export interface KeyFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/**
 * kresd.conf lines that keep knot-resolver from reaching the network on its
 * own: no root priming, no trust anchor (so no RFC 5011 fetches), none of the
 * modules that send signalling queries.
 */
export const KRESD_OFFLINE: readonly string[] = [
  "modules.unload('priming')",
  "modules.unload('detect_time_skew')",
  "modules.unload('ta_signal_query')",
  "modules.unload('ta_sentinel')",
  "trust_anchors.remove('.')",
];

async function ports(): Promise<[number, number, number]> {
  return [await freePort(), await freePort(), await freePort()];
}

/** dnsdist forwarding to 127.0.0.1:`backendPort`; `probeName` must resolve there. */
export async function startDnsdist(backendPort: number, keys: KeyFiles, probeName: string): Promise<TlsDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-dnsdist-'));
  const [plainPort, tlsPort, httpsPort] = await ports();
  const conf = join(dir, 'dnsdist.conf');
  writeFileSync(
    conf,
    [
      "setSecurityPollSuffix('')",
      `setLocal('127.0.0.1:${plainPort}')`,
      `newServer({address='127.0.0.1:${backendPort}'})`,
      // Without maxInFlight, dnsdist 1.7 reads a DoT connection's queries one at a
      // time and stalls on pipelined ones still in the TLS buffer (read timeout
      // after 2 answers); with it, it answers them concurrently (RFC 7766 §6.2.1.1).
      `addTLSLocal('127.0.0.1:${tlsPort}', '${keys.certFile}', '${keys.keyFile}', {maxInFlight=100})`,
      `addDOHLocal('127.0.0.1:${httpsPort}', '${keys.certFile}', '${keys.keyFile}', '/dns-query')`,
      '',
    ].join('\n'),
  );
  const d = await startDaemon({
    name: 'dnsdist',
    pkg: 'dnsdist',
    command: 'dnsdist',
    args: ['--supervised', '--disable-syslog', '-C', conf],
    dir,
    probe: { port: plainPort, name: probeName },
  });
  return { name: 'dnsdist', plainPort, tlsPort, httpsPort, stop: d.stop };
}

/** knot-resolver stub-forwarding to 127.0.0.1:`backendPort`; `probeName` must resolve there. */
export async function startKresd(backendPort: number, keys: KeyFiles, probeName: string): Promise<TlsDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-kresd-'));
  const [plainPort, tlsPort, httpsPort] = await ports();
  const conf = join(dir, 'kresd.conf');
  writeFileSync(
    conf,
    [
      ...KRESD_OFFLINE,
      `net.listen('127.0.0.1', ${plainPort}, { kind = 'dns' })`,
      `net.listen('127.0.0.1', ${tlsPort}, { kind = 'tls' })`,
      `net.listen('127.0.0.1', ${httpsPort}, { kind = 'doh2' })`,
      `net.tls('${keys.certFile}', '${keys.keyFile}')`,
      'cache.size = 10 * MB',
      `policy.add(policy.all(policy.STUB('127.0.0.1@${backendPort}')))`,
      '',
    ].join('\n'),
  );
  const d = await startDaemon({
    name: 'kresd',
    pkg: 'knot-resolver',
    command: 'kresd',
    args: ['-n', '-c', conf, dir],
    dir,
    probe: { port: plainPort, name: probeName },
  });
  return { name: 'kresd', plainPort, tlsPort, httpsPort, stop: d.stop };
}
