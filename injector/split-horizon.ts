/**
 * Split horizon inside the cluster: the names a tenant publishes through
 * tenant-dns gateway (the gateway's own sources and ownership rules,
 * gateway-sources.ts and gateway-ownership.ts), as split zones of the
 * tenant's platform layer answering internal addresses, for the tenants a
 * ClusterDNSPolicy with `spec.splitHorizon.enabled` selects. Pure.
 */
import { isIP } from 'node:net';
import { decide, type Published } from './gateway-ownership.ts';
import { parentGateways, readSources } from './gateway-sources.ts';
import type { SplitHorizon } from './crd-schema.ts';
import { arr, obj, type JsonObject } from './json.ts';

/** The objects that publish names, as the API server has them (the gateway's sources besides Namespaces and ClusterDNSPolicies). */
export interface PublishedObjects {
  /** networking.k8s.io/v1 Ingress objects. */
  readonly ingresses?: readonly JsonObject[];
  /** v1 Service objects (only LoadBalancer Services with the gateway's hostname annotation publish). */
  readonly services?: readonly JsonObject[];
  /** Gateway API HTTPRoute objects. */
  readonly httpRoutes?: readonly JsonObject[];
  /** Gateway API Gateway objects (an HTTPRoute publishes only through a Gateway with an address, as in the gateway). */
  readonly gateways?: readonly JsonObject[];
}

/** The prefix of the names of the split zones split horizon renders. */
export const SPLIT_HORIZON_ZONE_PREFIX = 'split-horizon-';

/** What the gateway would publish, by tenant, with each publishing object. */
export interface PublishedIndex {
  readonly byTenant: ReadonlyMap<string, readonly Published[]>;
  /** `Kind/namespace/name` (as in `Published.from`) → the object. */
  readonly objects: ReadonlyMap<string, JsonObject>;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function refKey(kind: string, o: JsonObject): string {
  const meta = obj(o.metadata) ?? {};
  return `${kind}/${str(meta.namespace) ?? 'default'}/${str(meta.name) ?? ''}`;
}

/**
 * What the gateway would publish for every tenant, decided by the gateway's
 * ownership rules over the domains the ClusterDNSPolicies assign. The
 * gateway's `--zone`, `--ns` and `--tenant-domain` are not known here: a
 * claim is judged within the assigned domains alone.
 */
export function publishedIndex(namespaces: readonly JsonObject[], clusterPolicies: readonly JsonObject[], published: PublishedObjects, tenantLabel: string): PublishedIndex {
  const sources = {
    namespaces,
    clusterPolicies,
    ingresses: published.ingresses ?? [],
    services: published.services ?? [],
    httpRoutes: published.httpRoutes ?? [],
    gateways: published.gateways ?? [],
  };
  const decision = decide(readSources(sources, tenantLabel), { zones: [''], reserved: new Set() });
  const byTenant = new Map<string, Published[]>();
  for (const p of decision.published) byTenant.set(p.tenant, [...(byTenant.get(p.tenant) ?? []), p]);
  const objects = new Map<string, JsonObject>();
  for (const o of sources.ingresses) objects.set(refKey('Ingress', o), o);
  for (const o of sources.services) objects.set(refKey('Service', o), o);
  for (const o of sources.httpRoutes) objects.set(refKey('HTTPRoute', o), o);
  return { byTenant, objects };
}

/**
 * The internal addresses of one publishing object: a Service's
 * `spec.clusterIPs` (else `spec.clusterIP`); an Ingress's, those configured
 * for its `spec.ingressClassName`; an HTTPRoute's, those configured for its
 * parent Gateways.
 */
function internalAddresses(ref: string, o: JsonObject, settings: readonly SplitHorizon[]): string[] {
  const spec = obj(o.spec) ?? {};
  if (ref.startsWith('Service/')) {
    const ips = arr(spec.clusterIPs).length > 0 ? arr(spec.clusterIPs) : [spec.clusterIP];
    return ips.filter((ip): ip is string => typeof ip === 'string' && isIP(ip) !== 0);
  }
  if (ref.startsWith('Ingress/')) {
    const cls = str(spec.ingressClassName);
    return cls === undefined ? [] : settings.flatMap((s) => (s.ingressClasses ?? []).filter((c) => c.name === cls).flatMap((c) => c.addresses));
  }
  const parents = new Set(parentGateways(o));
  return settings.flatMap((s) => (s.gateways ?? []).filter((g) => parents.has(`${g.namespace}/${g.name}`)).flatMap((g) => g.addresses));
}

/**
 * The split zones of one tenant: each name the gateway publishes for it that
 * has an internal address (the union over the objects that publish it),
 * grouped into one split zone per set of addresses, names sorted; `*.` hosts
 * are globs. Names in `taken` (globs the layer already answers) are left out.
 * Empty when no setting is enabled.
 */
export function splitHorizonZones(tenant: string, index: PublishedIndex, settings: readonly SplitHorizon[], taken: ReadonlySet<string>): JsonObject[] {
  const enabled = settings.filter((s) => s.enabled);
  if (enabled.length === 0) return [];
  const groups = new Map<string, string[]>();
  for (const p of index.byTenant.get(tenant) ?? []) {
    if (taken.has(p.name)) continue;
    const addresses = [...new Set(p.from.flatMap((ref) => internalAddresses(ref, index.objects.get(ref) ?? {}, enabled)))].sort();
    if (addresses.length === 0) continue;
    const key = addresses.join(',');
    groups.set(key, [...(groups.get(key) ?? []), p.name]);
  }
  return [...groups.keys()].sort().map((key, i) => ({ name: `${SPLIT_HORIZON_ZONE_PREFIX}${i + 1}`, names: groups.get(key)!, addresses: key.split(',') }));
}

/** Address problems of a ClusterDNSPolicy's `spec.splitHorizon` that its schema cannot express, with their paths. */
export function splitHorizonProblems(splitHorizon: unknown): { path: (string | number)[]; message: string }[] {
  const out: { path: (string | number)[]; message: string }[] = [];
  const s = obj(splitHorizon);
  for (const list of ['ingressClasses', 'gateways'] as const) {
    arr(s?.[list]).forEach((e, i) =>
      arr(obj(e)?.addresses).forEach((a, j) => {
        if (typeof a === 'string' && isIP(a) === 0) out.push({ path: ['spec', 'splitHorizon', list, i, 'addresses', j], message: `"${a}" is not an IPv4 or IPv6 address` });
      }),
    );
  }
  return out;
}
