/**
 * The `tenant-dns gateway` process: flags to options, the objects read (from
 * `--objects` files, else the Kubernetes API through informers), then either
 * the zone file written (`--dump-zone`) or the server run until SIGTERM or
 * SIGINT.
 */
import { isIP } from 'node:net';
import { parseHostPort } from '../sidecar/listener/address.ts';
import { createLogger, type Level } from '../sidecar/log.ts';
import { describeError, ErrorCodes, SidecarError } from '../sidecar/errors.ts';
import { normalizeName } from '../sidecar/dns/wire.ts';
import { VERSION } from '../sidecar/main.ts';
import { readObjectFiles } from './objects-file.ts';
import type { KubeSource } from './kube-source.ts';
import { buildGatewayData, checkZoneSettings, startGateway, type Gateway } from './server.ts';
import type { SourceObjects } from '../injector/gateway-sources.ts';
import { SerialClock, zoneFile, type NameServer, type ZoneSettings } from './zone.ts';

/** Commander's options of `tenant-dns gateway`. */
export interface GatewayFlags {
  readonly listen: string[];
  readonly zone: string[];
  readonly ns: string[];
  readonly hostmaster?: string;
  readonly ttl: number;
  readonly objects?: string[];
  readonly kubeconfig?: string;
  readonly tenantDomain: string[];
  readonly tenantLabel: string;
  readonly metrics: string;
  readonly dumpZone?: string;
  readonly logLevel: string;
}

function invalid(msg: string): never {
  throw new SidecarError(ErrorCodes.CONFIG_INVALID, msg);
}

/** `--ns NAME[=IP,...]` values as name servers. */
export function parseNameServers(values: readonly string[]): NameServer[] {
  return values.map((v) => {
    const [name = '', list] = v.split('=', 2);
    const addresses = list === undefined ? [] : list.split(',').map((a) => a.trim()).filter(Boolean);
    for (const a of addresses) if (!isIP(a)) invalid(`--ns ${v}: ${a} is not an IP address`);
    if (normalizeName(name) === '') invalid(`--ns ${v}: no name`);
    return { name: normalizeName(name), addresses };
  });
}

/** `--tenant-domain TENANT=DOMAIN` values as tenant → domains. */
export function parseTenantDomains(values: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const v of values) {
    const i = v.indexOf('=');
    if (i <= 0 || i === v.length - 1) invalid(`--tenant-domain ${v}: expected TENANT=DOMAIN`);
    const tenant = v.slice(0, i);
    out.set(tenant, [...(out.get(tenant) ?? []), normalizeName(v.slice(i + 1))]);
  }
  return out;
}

/** The zone settings of the flags, checked. */
export function zoneSettings(flags: Pick<GatewayFlags, 'zone' | 'ns' | 'ttl' | 'hostmaster'>): ZoneSettings {
  const settings: ZoneSettings = {
    zones: [...new Set(flags.zone.map(normalizeName))],
    ttl: flags.ttl,
    nameServers: parseNameServers(flags.ns),
    ...(flags.hostmaster ? { hostmaster: normalizeName(flags.hostmaster) } : {}),
  };
  checkZoneSettings(settings);
  return settings;
}

/** Runs `tenant-dns gateway`; resolves with the exit code. */
export async function runGateway(flags: GatewayFlags): Promise<number> {
  const log = createLogger({ component: 'gateway' }, flags.logLevel as Level);
  let objects: SourceObjects;
  let settings: ZoneSettings;
  let tenantDomains: Map<string, string[]>;
  let source: KubeSource | undefined;
  let gateway: Gateway | undefined;
  try {
    settings = zoneSettings(flags);
    tenantDomains = parseTenantDomains(flags.tenantDomain);
    if (flags.objects && flags.kubeconfig) invalid('--objects and --kubeconfig: give one source of objects, files or the Kubernetes API');
    if (flags.objects) objects = readObjectFiles(flags.objects);
    else {
      const { startKubeSource } = await import('./kube-source.ts');
      source = await startKubeSource({ kubeconfig: flags.kubeconfig, log, onChange: (next) => gateway?.update(next) });
      objects = source.objects();
    }
  } catch (err) {
    process.stderr.write(`tenant-dns gateway: ${describeError(err)}\n`);
    await source?.close();
    return 2;
  }
  const options = { zone: settings, tenantDomains, tenantLabel: flags.tenantLabel };
  if (flags.dumpZone !== undefined) {
    const { zones, decision } = buildGatewayData(objects, options, new SerialClock());
    for (const r of decision.rejected) process.stderr.write(`not published: ${r.claim.ref.kind}/${r.claim.ref.namespace}/${r.claim.ref.name} claims ${r.claim.host}: ${r.reason}: ${r.message}\n`);
    const zone = zones.zone(normalizeName(flags.dumpZone));
    if (!zone) {
      process.stderr.write(`tenant-dns gateway: --dump-zone ${flags.dumpZone}: not one of the zones served (${settings.zones.join(', ')})\n`);
      return 2;
    }
    process.stdout.write(zoneFile(zone));
    await source?.close();
    return 0;
  }
  try {
    const listen = (flags.listen ?? ['0.0.0.0:5353']).map((a) => parseHostPort(a, '--listen'));
    gateway = await startGateway(objects, { ...options, listen, metrics: flags.metrics, log, version: VERSION, ...(source ? { onRejection: source.report } : {}) });
    // Changes that came while the listeners were being bound.
    if (source) gateway.update(source.objects());
    await new Promise<void>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
  } finally {
    await source?.close();
    await gateway?.close();
  }
  return 0;
}
