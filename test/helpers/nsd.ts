/**
 * A real nsd (Debian's package) on a loopback port, authoritative for zone
 * files the test made, for the differential conformance suite. In the
 * foreground, no privilege drop, no database, no remote control, no rate
 * limiting, full (not minimal) responses; it sends nothing on its own (no
 * zone transfers or notifies are configured).
 */
import { mkdtempSync } from 'node:fs';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from './daemon.ts';
import { freePort } from './ports.ts';

/** A zone nsd serves: its apex and its zone file. */
export interface NsdZone {
  readonly name: string;
  readonly file: string;
}

/** A running nsd. */
export interface NsdServer {
  /** The UDP and TCP port on 127.0.0.1. */
  readonly port: number;
  /** Stops the process and removes its directory (not the zone files). Idempotent. */
  stop(): Promise<void>;
}

/** How nsd answers. */
export interface NsdOptions {
  /**
   * No additional data beyond what an answer needs (nsd's `minimal-responses`);
   * default false: glue and other additional data in every answer (the
   * conformance suite checks how it is cut for small clients).
   */
  readonly minimalResponses?: boolean;
}

/** The nsd.conf text for `zones` on 127.0.0.1:`port`, state files in `dir`. */
export function nsdConfig(dir: string, port: number, zones: readonly NsdZone[], options: NsdOptions = {}): string {
  const lines = [
    'server:',
    `  ip-address: 127.0.0.1@${port}`,
    '  do-ip6: no',
    '  database: ""',
    `  zonelistfile: "${join(dir, 'zone.list')}"`,
    `  xfrdfile: "${join(dir, 'xfrd.state')}"`,
    `  xfrdir: "${dir}"`,
    `  pidfile: "${join(dir, 'nsd.pid')}"`,
    '  username: ""',
    '  chroot: ""',
    '  zonesdir: ""',
    '  server-count: 1',
    '  verbosity: 0',
    '  hide-version: yes',
    `  minimal-responses: ${options.minimalResponses ? 'yes' : 'no'}`,
    '  round-robin: no',
    // Hundreds of queries a second from 127.0.0.1 are the point, not an attack.
    '  rrl-ratelimit: 0',
    '  rrl-whitelist-ratelimit: 0',
    'remote-control:',
    '  control-enable: no',
  ];
  for (const z of zones) lines.push('zone:', `  name: "${z.name}"`, `  zonefile: "${z.file}"`);
  lines.push('');
  return lines.join('\n');
}

/** Starts nsd serving `zones`; resolves once it answers the first zone's SOA. */
export async function startNsd(zones: readonly NsdZone[], options: NsdOptions = {}): Promise<NsdServer> {
  if (zones.length === 0) throw new Error('startNsd: no zones');
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-nsd-'));
  const port = await freePort();
  const conf = join(dir, 'nsd.conf');
  writeFileSync(conf, nsdConfig(dir, port, zones, options));
  const daemon = await startDaemon({
    name: 'nsd',
    pkg: 'nsd',
    command: 'nsd',
    args: ['-d', '-c', conf],
    dir,
    probe: { port, name: zones[0]!.name, type: 'SOA' },
  });
  return { port, stop: () => daemon.stop() };
}
