/**
 * Ownership: which claims the gateway publishes. A name belongs to the tenant
 * whose assigned domain is the longest suffix of it; a tenant may publish only
 * names it owns, inside a served zone. Claims that pass are merged per name
 * (the union of one tenant's addresses). Pure: no I/O, no clock.
 */
import { isIP } from 'node:net';
import { inZone } from '../sidecar/dns/wire.ts';
import type { Claim, SourceView } from './gateway-sources.ts';

/**
 * Why a claim is not published (the `reason` label of
 * `tenant_dns_gateway_rejected_total`):
 * - `invalid-name`: not a DNS host name (a `*` only as the whole first label);
 * - `outside-zones`: in none of the zones the gateway serves;
 * - `outside-domains`: in no domain assigned to any tenant;
 * - `owned-by-other`: the longest domain it lies in is another tenant's;
 * - `contested`: the longest domain it lies in is assigned to more than one tenant (neither publishes there);
 * - `wildcard-covers-other`: a wildcard whose expansion would answer for a domain of another tenant below it;
 * - `reserved`: a zone's name server name (its glue is the gateway's);
 * - `cname-at-apex`: a host-name load balancer at a zone apex (a CNAME cannot sit beside the SOA and NS);
 * - `cname-conflict`: another object of the tenant publishes addresses, or another host name, at the same name.
 */
export type RejectReason =
  | 'invalid-name'
  | 'outside-zones'
  | 'outside-domains'
  | 'owned-by-other'
  | 'contested'
  | 'wildcard-covers-other'
  | 'reserved'
  | 'cname-at-apex'
  | 'cname-conflict';

/** A claim not published, and why, in words for a log line or an Event. */
export interface Rejection {
  readonly claim: Claim;
  readonly reason: RejectReason;
  readonly message: string;
}

/** What one name publishes: addresses, or one CNAME target; and which tenant and objects it came from. */
export interface Published {
  readonly name: string;
  readonly tenant: string;
  readonly a: readonly string[];
  readonly aaaa: readonly string[];
  readonly cname?: string;
  /** `Kind/namespace/name` of every object that contributed, sorted. */
  readonly from: readonly string[];
}

/** The outcome of {@link decide}. */
export interface Decision {
  /** By name, sorted by name. */
  readonly published: readonly Published[];
  readonly rejected: readonly Rejection[];
}

/** What the gateway serves, as ownership needs it. */
export interface ServedZones {
  /** The zones (normalized). */
  readonly zones: readonly string[];
  /** Names the gateway itself publishes (its name servers' glue): no tenant may claim them. */
  readonly reserved: ReadonlySet<string>;
}

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** Whether `host` (normalized) is a host name the gateway can publish: LDH labels (and `_`), a `*` only as the whole first label. */
export function validHost(host: string): boolean {
  if (host === '' || host.length > 253) return false;
  const labels = host.split('.');
  return labels.every((l, i) => (i === 0 && l === '*' && labels.length > 1) || LABEL.test(l));
}

/** The tenants of each assigned domain. */
function domainTenants(domains: ReadonlyMap<string, readonly string[]>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [tenant, list] of domains) for (const d of list) out.set(d, [...(out.get(d) ?? []), tenant].sort());
  return out;
}

/** The longest assigned domain `name` lies in (equal or below), with its tenants; undefined when none. */
function owningDomain(name: string, owners: ReadonlyMap<string, readonly string[]>): { domain: string; tenants: readonly string[] } | undefined {
  let best: string | undefined;
  for (const d of owners.keys()) if (inZone(name, d) && (best === undefined || d.length > best.length)) best = d;
  return best === undefined ? undefined : { domain: best, tenants: owners.get(best)! };
}

const refText = (c: Claim) => `${c.ref.kind}/${c.ref.namespace}/${c.ref.name}`;

/** Why `c` may not be published, or undefined when it may. */
function ownershipProblem(c: Claim, view: SourceView, owners: ReadonlyMap<string, readonly string[]>, served: ServedZones): Omit<Rejection, 'claim'> | undefined {
  const host = c.host;
  if (!validHost(host)) return { reason: 'invalid-name', message: `${host} is not a host name the gateway can publish` };
  const zone = findLongestZone(host, served.zones);
  if (zone === undefined) return { reason: 'outside-zones', message: `${host} is in none of the zones this gateway serves (${served.zones.join(', ')})` };
  if (served.reserved.has(host)) return { reason: 'reserved', message: `${host} is a name server name of zone ${zone}` };
  const owner = owningDomain(host, owners);
  if (owner === undefined) {
    const own = view.domains.get(c.tenant) ?? [];
    return { reason: 'outside-domains', message: `${host} is outside the domains of tenant ${c.tenant} (${own.length > 0 ? own.join(', ') : 'none assigned'})` };
  }
  if (owner.tenants.length > 1) return { reason: 'contested', message: `${host} is in domain ${owner.domain}, assigned to more than one tenant (${owner.tenants.join(', ')}): no tenant publishes there` };
  if (owner.tenants[0] !== c.tenant) return { reason: 'owned-by-other', message: `${host} is in domain ${owner.domain} of tenant ${owner.tenants[0]}` };
  if (host.startsWith('*.')) {
    const parent = host.slice(2);
    for (const [d, tenants] of owners) {
      if (d !== parent && inZone(d, parent) && tenants.some((t) => t !== c.tenant)) {
        return { reason: 'wildcard-covers-other', message: `${host} would answer for ${d}, a domain of tenant ${tenants.filter((t) => t !== c.tenant).join(', ')}` };
      }
    }
  }
  if (c.addresses.length === 0 && c.target !== undefined && served.zones.includes(host)) {
    return { reason: 'cname-at-apex', message: `${host} is the apex of a zone: a host-name load balancer (${c.target}) cannot be published there as a CNAME` };
  }
  return undefined;
}

/** The longest of `zones` that `name` lies in. */
export function findLongestZone(name: string, zones: readonly string[]): string | undefined {
  let best: string | undefined;
  for (const z of zones) if (inZone(name, z) && (best === undefined || z.length > best.length)) best = z;
  return best;
}

/**
 * Decides which claims are published and merges them per name: the union
 * of the addresses of every claim of the name (all of one tenant, ownership
 * makes sure); when some publish addresses, the host-name claims of that
 * name are rejected (`cname-conflict`: a CNAME cannot sit beside A records);
 * of host-name claims alone, the target first in order wins and the others
 * are rejected. Claims with neither (no load-balancer address yet) are
 * neither published nor rejected.
 */
export function decide(view: SourceView, served: ServedZones): Decision {
  const owners = domainTenants(view.domains);
  const rejected: Rejection[] = [];
  const byName = new Map<string, Claim[]>();
  for (const c of view.claims) {
    const problem = ownershipProblem(c, view, owners, served);
    if (problem) {
      rejected.push({ claim: c, ...problem });
      continue;
    }
    if (c.addresses.length === 0 && c.target === undefined) continue;
    byName.set(c.host, [...(byName.get(c.host) ?? []), c]);
  }
  const published: Published[] = [];
  for (const name of [...byName.keys()].sort()) {
    const claims = byName.get(name)!;
    const withAddresses = claims.filter((c) => c.addresses.length > 0);
    const winners: Claim[] = [];
    if (withAddresses.length > 0) {
      winners.push(...withAddresses);
      for (const c of claims) {
        if (c.addresses.length === 0) rejected.push({ claim: c, reason: 'cname-conflict', message: `${name}: ${refText(c)} points at host name ${c.target}, but ${refText(withAddresses[0]!)} publishes addresses there` });
      }
    } else {
      const target = claims.map((c) => c.target!).sort()[0]!;
      for (const c of claims) {
        if (c.target === target) winners.push(c);
        else rejected.push({ claim: c, reason: 'cname-conflict', message: `${name}: ${refText(c)} points at ${c.target}, but another object of the tenant points at ${target}` });
      }
    }
    const addrs = [...new Set(winners.flatMap((c) => c.addresses))];
    published.push({
      name,
      tenant: winners[0]!.tenant,
      a: addrs.filter((a) => isIP(a) === 4).sort(),
      aaaa: addrs.filter((a) => isIP(a) === 6).sort(),
      ...(withAddresses.length === 0 ? { cname: winners[0]!.target! } : {}),
      from: [...new Set(winners.map(refText))].sort(),
    });
  }
  return { published, rejected };
}
