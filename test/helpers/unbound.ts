/**
 * A real unbound (Debian's package) on a loopback port, serving test zones
 * from local-data, for integration tests. It never recurses: every name
 * outside the test zones is answered NXDOMAIN by a static root zone, so no
 * query leaves the machine.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as packet from 'dns-packet';
import { startDaemon } from './daemon.ts';
import { freePort } from './ports.ts';

/** A zone served by the test unbound. */
export interface TestZone {
  /** Zone apex, e.g. `test.example`. */
  readonly name: string;
  /** local-data lines without quotes, e.g. `www.test.example. 300 IN A 192.0.2.1`. */
  readonly records: readonly string[];
  /** SOA minimum (negative TTL), seconds; default 60. */
  readonly negativeTtl?: number;
}

/** A running unbound. */
export interface UnboundServer {
  /** `127.0.0.1`. */
  readonly host: string;
  /** The UDP and TCP port it serves on. */
  readonly port: number;
  /** `127.0.0.1:PORT`. */
  readonly address: string;
  /** Stops the process and removes its files. Idempotent. */
  stop(): Promise<void>;
}

/**
 * The `server:` lines every unbound the tests start shares: loopback only,
 * in the foreground, no privilege drop or chroot, files in `dir`, the
 * iterator alone (no validator, so no trust anchor is ever fetched).
 */
export function unboundServerLines(dir: string, port: number): string[] {
  return [
    'server:',
    `  interface: 127.0.0.1@${port}`,
    '  do-ip6: no',
    '  do-daemonize: no',
    '  use-syslog: no',
    '  logfile: ""',
    '  verbosity: 0',
    '  username: ""',
    '  chroot: ""',
    `  directory: "${dir}"`,
    `  pidfile: "${join(dir, 'unbound.pid')}"`,
    '  access-control: 127.0.0.0/8 allow',
    '  module-config: "iterator"',
    '  num-threads: 1',
  ];
}

/** The unbound.conf text for `zones` on `port`. */
export function unboundConfig(dir: string, port: number, zones: readonly TestZone[], extra = ''): string {
  const lines = [
    ...unboundServerLines(dir, port),
    '  msg-buffer-size: 65552',
    '  max-udp-size: 4096',
    '  edns-buffer-size: 1232',
    '  minimal-responses: no',
    '  local-zone: "." static',
  ];
  for (const z of zones) {
    const min = z.negativeTtl ?? 60;
    lines.push(`  local-zone: "${z.name}." static`);
    lines.push(`  local-data: "${z.name}. 3600 IN SOA ns.${z.name}. hostmaster.${z.name}. 1 3600 600 86400 ${min}"`);
    lines.push(`  local-data: "${z.name}. 3600 IN NS ns.${z.name}."`);
    for (const r of z.records) lines.push(`  local-data: '${r}'`);
  }
  lines.push(extra, 'remote-control:', '  control-enable: no', '');
  return lines.join('\n');
}

/** Starts unbound serving `zones`; resolves once it answers a query. */
export async function startUnbound(zones: readonly TestZone[], extra = ''): Promise<UnboundServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-unbound-'));
  const port = await freePort();
  const conf = join(dir, 'unbound.conf');
  writeFileSync(conf, unboundConfig(dir, port, zones, extra));
  const daemon = await startDaemon({
    name: 'unbound',
    pkg: 'unbound',
    command: 'unbound',
    args: ['-d', '-p', '-c', conf],
    dir,
    probe: { port, name: zones[0] ? zones[0].name : '.', type: 'SOA' },
  });
  const stop = () => daemon.stop();
  return { host: '127.0.0.1', port, address: `127.0.0.1:${port}`, stop };
}

/**
 * The extra unbound.conf lines that make it serve DoT on `tlsPort` and DoH
 * (HTTP/2) on `httpsPort` with the given key pair, path /dns-query.
 */
export function unboundTlsConfig(tlsPort: number, httpsPort: number, keyPair: { keyFile: string; certFile: string }): string {
  return [
    `  interface: 127.0.0.1@${tlsPort}`,
    `  interface: 127.0.0.1@${httpsPort}`,
    `  tls-port: ${tlsPort}`,
    `  https-port: ${httpsPort}`,
    `  tls-service-key: "${keyPair.keyFile}"`,
    `  tls-service-pem: "${keyPair.certFile}"`,
    '  http-endpoint: "/dns-query"',
  ].join('\n');
}

/** What {@link startValidatingUnbound} takes. */
export interface ValidatingUnboundOptions {
  /** Zones resolved from an authoritative server on 127.0.0.1 (stub zones). */
  readonly stubs: readonly { readonly zone: string; readonly port: number }[];
  /** DS (or DNSKEY) records, presentation format, trusted as anchors. */
  readonly trustAnchors: readonly string[];
  /** Serve DoT and DoH too, with this key pair. */
  readonly tls?: { readonly keyFile: string; readonly certFile: string };
}

/** A running validating unbound. */
export interface ValidatingUnbound extends UnboundServer {
  /** DoT port; 0 without `tls`. */
  readonly tlsPort: number;
  /** DoH port (path /dns-query); 0 without `tls`. */
  readonly httpsPort: number;
}

/**
 * The unbound.conf text of a validating recursive resolver for `stubs` only:
 * the validator in front of the iterator, the given trust anchors and no
 * other (no root anchor, so nothing is ever fetched), every name outside the
 * stub zones answered from a static empty root, full responses (additional
 * data included), Extended DNS Errors on.
 */
export function validatingUnboundConfig(dir: string, port: number, opts: ValidatingUnboundOptions, tlsLines = ''): string {
  const lines = [
    ...unboundServerLines(dir, port).map((l) => (l.includes('module-config') ? '  module-config: "validator iterator"' : l)),
    '  msg-buffer-size: 65552',
    '  max-udp-size: 4096',
    '  edns-buffer-size: 1232',
    '  minimal-responses: no',
    '  do-not-query-localhost: no',
    '  ede: yes',
    '  val-log-level: 0',
    '  local-zone: "." static',
  ];
  for (const s of opts.stubs) lines.push(`  local-zone: "${s.zone}." transparent`);
  for (const ta of opts.trustAnchors) lines.push(`  trust-anchor: "${ta.replace(/"/g, '')}"`);
  if (tlsLines) lines.push(tlsLines);
  for (const s of opts.stubs) lines.push('stub-zone:', `  name: "${s.zone}."`, `  stub-addr: 127.0.0.1@${s.port}`);
  lines.push('remote-control:', '  control-enable: no', '');
  return lines.join('\n');
}

/** Starts a validating unbound (see {@link validatingUnboundConfig}); resolves once it answers the first stub zone's SOA. */
export async function startValidatingUnbound(opts: ValidatingUnboundOptions): Promise<ValidatingUnbound> {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-unbound-v-'));
  const port = await freePort();
  const tlsPort = opts.tls ? await freePort() : 0;
  const httpsPort = opts.tls ? await freePort() : 0;
  const conf = join(dir, 'unbound.conf');
  writeFileSync(conf, validatingUnboundConfig(dir, port, opts, opts.tls ? unboundTlsConfig(tlsPort, httpsPort, opts.tls) : ''));
  const daemon = await startDaemon({
    name: 'unbound (validating)',
    pkg: 'unbound',
    command: 'unbound',
    args: ['-d', '-p', '-c', conf],
    dir,
    probe: { port, name: opts.stubs[0]?.zone ?? '.', type: 'SOA' },
  });
  return { host: '127.0.0.1', port, address: `127.0.0.1:${port}`, tlsPort, httpsPort, stop: () => daemon.stop() };
}

/** Records of a TXT RRset big enough that the answer exceeds `bytes`. */
export function bigTxtRecords(owner: string, bytes: number): string[] {
  const out: string[] = [];
  const chunk = 'x'.repeat(200);
  for (let i = 0; out.length * 230 < bytes; i++) out.push(`${owner}. 300 IN TXT "${i.toString().padStart(4, '0')}${chunk}"`);
  return out;
}

export type { packet };
