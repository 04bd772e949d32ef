/**
 * The zones the gateway serves, built from what ownership published, and the
 * authoritative lookup in them (RFC 1034 §4.3.2 without delegations): exact
 * names, empty non-terminals, RFC 4592 wildcards, CNAMEs followed inside the
 * zone, NXDOMAIN versus NODATA with the SOA (RFC 2308). Also the zone as a
 * zone file (`--dump-zone`). Pure: no I/O; the serial's clock is passed in.
 */
import { createHash } from 'node:crypto';
import type { Answer } from 'dns-packet';
import { inZone } from '../sidecar/dns/wire.ts';
import { RCode, RRType } from '../sidecar/dns/constants.ts';
import { findLongestZone, type Published } from '../injector/gateway-ownership.ts';

/** A name server of every zone: its name, and its addresses when it lies inside a served zone (glue). */
export interface NameServer {
  readonly name: string;
  readonly addresses: readonly string[];
}

/** What every zone shares. */
export interface ZoneSettings {
  /** The served zones (normalized). */
  readonly zones: readonly string[];
  /** TTL of every record, and the SOA minimum (the negative-caching TTL, RFC 2308 §5), in seconds. */
  readonly ttl: number;
  /** The NS records of each apex, first one the SOA MNAME. */
  readonly nameServers: readonly NameServer[];
  /** The SOA RNAME, a mailbox as a name (`hostmaster.example.com`); default `hostmaster.<zone>`. */
  readonly hostmaster?: string;
}

/** SOA timers (seconds): refresh, retry, expire. No secondary reads them (the gateway has no zone transfers); they are RFC 1912's usual values. */
export const SOA_TIMERS = { refresh: 3600, retry: 600, expire: 1_209_600 } as const;

/** The data of one name. */
interface NameData {
  /** The tenant whose name it is; undefined for the gateway's own records (apex, glue). */
  tenant?: string;
  a: string[];
  aaaa: string[];
  cname?: string;
}

/** One zone: its names with data, every name that exists (empty non-terminals included), and its SOA serial. */
export class Zone {
  readonly apex: string;
  readonly serial: number;
  readonly settings: ZoneSettings;
  readonly #names: ReadonlyMap<string, NameData>;
  readonly #exists: ReadonlySet<string>;

  constructor(apex: string, serial: number, settings: ZoneSettings, names: ReadonlyMap<string, NameData>) {
    this.apex = apex;
    this.serial = serial;
    this.settings = settings;
    this.#names = names;
    const exists = new Set<string>([apex]);
    for (const name of names.keys()) {
      // Every name from the owner up to the apex exists (RFC 4592 §2.2.2: empty non-terminals).
      for (let n = name; n !== apex && !exists.has(n); n = n.slice(n.indexOf('.') + 1)) exists.add(n);
    }
    this.#exists = exists;
  }

  /** Names with data, sorted (apex first, then by name). */
  names(): string[] {
    return [...this.#names.keys()].sort((x, y) => (x === this.apex ? -1 : y === this.apex ? 1 : x < y ? -1 : x > y ? 1 : 0));
  }

  /** The data of a name, undefined when it has none. */
  data(name: string): Readonly<NameData> | undefined {
    return this.#names.get(name);
  }

  /** Whether `name` exists in the zone (has data, or has a name with data below it). */
  exists(name: string): boolean {
    return this.#exists.has(name);
  }

  /** The SOA record. */
  soa(): Answer {
    const s = this.settings;
    return {
      name: this.apex,
      type: 'SOA',
      class: 'IN',
      ttl: s.ttl,
      data: { mname: s.nameServers[0]!.name, rname: s.hostmaster ?? `hostmaster.${this.apex}`, serial: this.serial, ...SOA_TIMERS, minimum: s.ttl },
    };
  }

  /** The records of `name` (which has data) of type `qtype` (ANY: all of them), owned by `owner`. */
  records(name: string, qtype: number, owner = name): Answer[] {
    const d = this.#names.get(name);
    if (!d) return [];
    const ttl = this.settings.ttl;
    const out: Answer[] = [];
    const any = qtype === RRType.ANY;
    if (name === this.apex && (any || qtype === RRType.SOA)) out.push({ ...this.soa(), name: owner });
    if (name === this.apex && (any || qtype === RRType.NS)) for (const ns of this.settings.nameServers) out.push({ name: owner, type: 'NS', class: 'IN', ttl, data: ns.name });
    if (d.cname !== undefined && (any || qtype === RRType.CNAME)) out.push({ name: owner, type: 'CNAME', class: 'IN', ttl, data: d.cname });
    if (any || qtype === RRType.A) for (const a of d.a) out.push({ name: owner, type: 'A', class: 'IN', ttl, data: a });
    if (any || qtype === RRType.AAAA) for (const a of d.aaaa) out.push({ name: owner, type: 'AAAA', class: 'IN', ttl, data: a });
    return out;
  }

  /** The A and AAAA records of the in-zone name servers: the additional section of an NS answer. */
  glue(): Answer[] {
    return this.settings.nameServers.filter((ns) => inZone(ns.name, this.apex)).flatMap((ns) => [...this.records(ns.name, RRType.A), ...this.records(ns.name, RRType.AAAA)]);
  }
}

/** The answer of {@link ZoneSet.lookup}: what a reply holds, and what metrics label it with. */
export interface LookupResult {
  readonly rcode: number;
  /** AA: false only for REFUSED (a name outside the zones). */
  readonly authoritative: boolean;
  /** Records in dns-packet's shape, or already in wire form (the server's answer cache keeps them so). */
  readonly answers: readonly (Answer | Buffer)[];
  readonly authorities: readonly (Answer | Buffer)[];
  readonly additionals: readonly (Answer | Buffer)[];
  /** The zone the question lies in, '' when none. */
  readonly zone: string;
  /** The tenant whose name (or wildcard) answered the question, '' when none did. */
  readonly tenant: string;
  /** A zone transfer was asked for (AXFR, IXFR): refused, the gateway has no secondaries. */
  readonly transfer?: boolean;
}

/** Most CNAMEs followed in one answer (a loop inside the zone ends there). */
const MAX_CHAIN = 8;

/** The answer to a question outside every zone (or of a class other than IN): REFUSED, AA clear, nothing else. */
export const REFUSED: LookupResult = Object.freeze({ rcode: RCode.REFUSED, authoritative: false, answers: [], authorities: [], additionals: [], zone: '', tenant: '' });

/** Every served zone, looked up by the longest zone a name lies in. */
export class ZoneSet {
  readonly zones: readonly Zone[];

  constructor(zones: readonly Zone[]) {
    this.zones = zones;
  }

  /** The zone named `apex`, undefined when not served. */
  zone(apex: string): Zone | undefined {
    return this.zones.find((z) => z.apex === apex);
  }

  /**
   * The authoritative answer to `qname` (normalized) of type `qtype`, class
   * IN: REFUSED outside the zones (and for zone transfers, which the gateway
   * does not do: `transfer` set); else the records, NODATA or NXDOMAIN with the SOA in the
   * authority section (RFC 2308 §2), AA set. A wildcard answers a name that
   * does not exist when it is the child `*` of the closest encloser
   * (RFC 4592 §3.3.1), with the question's name as the owner. A CNAME is
   * followed while its target lies in the same zone (RFC 1034 §4.3.2 step
   * 3a); the rcode is then the last name's (RFC 6604). ANY gets one RRset
   * of the name (RFC 8482 §4.2).
   */
  lookup(qname: string, qtype: number): LookupResult {
    const apex = findLongestZone(qname, this.zones.map((z) => z.apex));
    if (apex === undefined) return REFUSED;
    if (qtype === RRType.AXFR || qtype === RRType.IXFR) return { ...REFUSED, zone: apex, transfer: true };
    const zone = this.zone(apex)!;
    const answers: Answer[] = [];
    const seen = new Set<string>();
    let tenant: string | undefined;
    let name = qname;
    for (;;) {
      seen.add(name);
      let source = name;
      if (zone.data(name) === undefined) {
        if (zone.exists(name)) return this.#negative(zone, RCode.NOERROR, answers, tenant);
        let encloser = name.slice(name.indexOf('.') + 1);
        while (!zone.exists(encloser)) encloser = encloser.slice(encloser.indexOf('.') + 1);
        source = `*.${encloser}`;
        if (zone.data(source) === undefined) return this.#negative(zone, RCode.NXDOMAIN, answers, tenant);
      }
      const data = zone.data(source)!;
      tenant ??= data.tenant ?? '';
      if (data.cname !== undefined && qtype !== RRType.CNAME && qtype !== RRType.ANY) {
        answers.push(...zone.records(source, RRType.CNAME, name));
        const target = data.cname;
        if (!inZone(target, zone.apex) || seen.has(target) || seen.size >= MAX_CHAIN) return this.#positive(zone, answers, [], tenant);
        name = target;
        continue;
      }
      let records = zone.records(source, qtype, name);
      // ANY: one RRset, the first of SOA, NS, CNAME, A, AAAA (RFC 8482 §4.2), as nsd answers.
      if (qtype === RRType.ANY) records = records.filter((r) => r.type === records[0]!.type);
      if (records.length === 0) return this.#negative(zone, RCode.NOERROR, answers, tenant);
      answers.push(...records);
      return this.#positive(zone, answers, source === zone.apex && qtype === RRType.NS ? zone.glue() : [], tenant);
    }
  }

  #positive(zone: Zone, answers: Answer[], additionals: Answer[], tenant: string): LookupResult {
    return { rcode: RCode.NOERROR, authoritative: true, answers, authorities: [], additionals, zone: zone.apex, tenant };
  }

  #negative(zone: Zone, rcode: number, answers: Answer[], tenant: string | undefined): LookupResult {
    return { rcode, authoritative: true, answers, authorities: [zone.soa()], additionals: [], zone: zone.apex, tenant: tenant ?? '' };
  }
}

/**
 * Gives each zone a serial that increases whenever its data changes: the
 * current time in seconds since the epoch, or the last serial plus one when
 * that is not larger (two changes within a second). Unchanged data keeps its
 * serial. Replicas that see a change at about the same time get about the
 * same serial; no secondary compares them (the gateway has no zone transfers).
 */
export class SerialClock {
  readonly #now: () => number;
  readonly #last = new Map<string, { hash: string; serial: number }>();

  /** @param now the clock, milliseconds since the epoch */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** The serial of zone `apex` whose content hashes to `hash`. */
  serial(apex: string, hash: string): number {
    const last = this.#last.get(apex);
    if (last?.hash === hash) return last.serial;
    const serial = Math.max(Math.floor(this.#now() / 1000) >>> 0, last ? last.serial + 1 : 0) >>> 0;
    this.#last.set(apex, { hash, serial });
    return serial;
  }
}

/** Builds the zones from the published names (those of no served zone are left out: ownership rejected them). */
export function buildZones(published: readonly Published[], settings: ZoneSettings, clock: SerialClock): ZoneSet {
  const byZone = new Map<string, Map<string, NameData>>(settings.zones.map((z) => [z, new Map()]));
  const add = (name: string, data: NameData) => {
    const apex = findLongestZone(name, settings.zones);
    if (apex !== undefined) byZone.get(apex)!.set(name, data);
  };
  for (const z of settings.zones) byZone.get(z)!.set(z, { a: [], aaaa: [] });
  for (const ns of settings.nameServers) {
    if (ns.addresses.length === 0) continue;
    add(ns.name, { a: ns.addresses.filter((x) => !x.includes(':')), aaaa: ns.addresses.filter((x) => x.includes(':')) });
  }
  for (const p of published) {
    const apex = findLongestZone(p.name, settings.zones);
    const existing = apex === undefined ? undefined : byZone.get(apex)!.get(p.name);
    // At an apex the tenant's addresses join the gateway's SOA and NS (ownership keeps CNAMEs off it).
    add(p.name, { tenant: p.tenant, a: [...(existing?.a ?? []), ...p.a], aaaa: [...(existing?.aaaa ?? []), ...p.aaaa], ...(p.cname ? { cname: p.cname } : {}) });
  }
  const zones = settings.zones.map((apex) => {
    const names = byZone.get(apex)!;
    const hash = createHash('sha256').update(JSON.stringify([settings, [...names].sort(([x], [y]) => (x < y ? -1 : 1))])).digest('hex');
    return new Zone(apex, clock.serial(apex, hash), settings, names);
  });
  return new ZoneSet(zones);
}

const fqdn = (name: string) => `${name}.`;

/** Record data in zone-file presentation form. */
function rdataText(rr: Answer): string {
  if (rr.type === 'OPT') return '';
  if (rr.type === 'SOA') {
    const d = rr.data;
    return `${fqdn(d.mname)} ${fqdn(d.rname)} ${d.serial} ${d.refresh} ${d.retry} ${d.expire} ${d.minimum}`;
  }
  if (rr.type === 'NS' || rr.type === 'CNAME') return fqdn(rr.data);
  return String(rr.data);
}

/** The zone as an RFC 1035 master file: SOA and NS at the apex first, then every name with data in name order. */
export function zoneFile(zone: Zone): string {
  const lines = [`; zone ${zone.apex}, written by tenant-dns gateway --dump-zone`, `$ORIGIN ${fqdn(zone.apex)}`, `$TTL ${zone.settings.ttl}`];
  for (const name of zone.names()) {
    for (const rr of zone.records(name, RRType.ANY)) lines.push(`${fqdn(rr.name)}\t${zone.settings.ttl}\tIN\t${rr.type}\t${rdataText(rr)}`);
  }
  return lines.join('\n') + '\n';
}
