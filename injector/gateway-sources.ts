/**
 * What the gateway publishes, read from Kubernetes objects: the host names
 * each Ingress, annotated LoadBalancer Service and Gateway API HTTPRoute
 * claims, with the addresses (or load-balancer host name) behind them, and
 * the domains ClusterDNSPolicies assign to tenants. Pure: no I/O, no clock.
 */
import { isIP } from 'node:net';
import { normalizeName } from '../sidecar/dns/wire.ts';
import { selectorMatches } from '../sidecar/policy/compile.ts';
import { arr, obj, type JsonObject } from './json.ts';
import { namespaceTenant } from './namespaces.ts';

/** The annotation a LoadBalancer Service names its host names with (comma-separated). */
export const HOSTNAME_ANNOTATION = 'tenant-dns.io/hostname';

/** The default tenant label of a namespace (the injector's `tenantLabel`). */
export const DEFAULT_TENANT_LABEL = 'tenant-dns.io/tenant';

/** The Gateway API group. */
export const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';

/** The objects the gateway reads, by kind (each a complete Kubernetes object as the API returns it). */
export interface SourceObjects {
  readonly namespaces: readonly JsonObject[];
  readonly ingresses: readonly JsonObject[];
  readonly services: readonly JsonObject[];
  readonly httpRoutes: readonly JsonObject[];
  readonly gateways: readonly JsonObject[];
  readonly clusterPolicies: readonly JsonObject[];
}

/** The kind's field in {@link SourceObjects}, for an object's apiVersion and kind; undefined for kinds the gateway does not read. */
export function kindField(apiVersion: unknown, kind: unknown): keyof SourceObjects | undefined {
  const group = typeof apiVersion === 'string' && apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  if (kind === 'Namespace' && group === '') return 'namespaces';
  if (kind === 'Service' && group === '') return 'services';
  if (kind === 'Ingress' && group === 'networking.k8s.io') return 'ingresses';
  if (kind === 'HTTPRoute' && group === GATEWAY_API_GROUP) return 'httpRoutes';
  if (kind === 'Gateway' && group === GATEWAY_API_GROUP) return 'gateways';
  if (kind === 'ClusterDNSPolicy' && group === 'tenant-dns.io') return 'clusterPolicies';
  return undefined;
}

/** An object that claims names: its kind, namespace, name and uid (for Events). */
export interface ObjectRef {
  readonly kind: string;
  readonly apiVersion: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid?: string;
}

/**
 * One host name one object claims, and what it points at: addresses (A and
 * AAAA records), else a host name (a CNAME, for load balancers that have one,
 * as AWS's do). Both empty: the load balancer has no address yet, nothing to publish.
 */
export interface Claim {
  readonly ref: ObjectRef;
  /** The tenant of the object's namespace. */
  readonly tenant: string;
  /** The host as written, normalized (lower case, no trailing dot); may start with `*.`. */
  readonly host: string;
  /** IPv4 and IPv6 addresses, sorted, without duplicates. */
  readonly addresses: readonly string[];
  /** The load balancer's host name when it has no address (normalized). */
  readonly target?: string;
}

/** The claims read from the objects and the domains assigned to each tenant. */
export interface SourceView {
  readonly claims: readonly Claim[];
  /** Tenant → the domains the platform assigned to it (normalized, sorted, no duplicates). */
  readonly domains: ReadonlyMap<string, readonly string[]>;
}

/** Tenant and labels of namespaces, by name. */
interface NamespaceInfo {
  readonly tenant: string;
  readonly labels: Readonly<Record<string, string>>;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function labelsOf(o: JsonObject): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(obj(o.metadata)?.labels) ?? {})) if (typeof v === 'string') out[k] = v;
  return out;
}

function refOf(o: JsonObject, kind: string, apiVersion: string): ObjectRef {
  const meta = obj(o.metadata) ?? {};
  const uid = str(meta.uid);
  return { kind, apiVersion: str(o.apiVersion) ?? apiVersion, namespace: str(meta.namespace) ?? 'default', name: str(meta.name) ?? '', ...(uid ? { uid } : {}) };
}

/**
 * The tenant of each namespace: its `tenantLabel` label when that is a valid
 * tenant name, else the namespace's name (as the injector decides).
 */
function namespaceInfo(namespaces: readonly JsonObject[], tenantLabel: string): Map<string, NamespaceInfo> {
  const out = new Map<string, NamespaceInfo>();
  for (const n of namespaces) {
    const name = str(obj(n.metadata)?.name);
    if (!name) continue;
    const labels = labelsOf(n);
    out.set(name, { tenant: namespaceTenant(name, labels[tenantLabel]), labels });
  }
  return out;
}

/** Addresses and a host name from `status.loadBalancer.ingress` (Ingress, Service). */
function loadBalancerTargets(o: JsonObject): { addresses: string[]; hostnames: string[] } {
  const addresses: string[] = [];
  const hostnames: string[] = [];
  for (const entry of arr(obj(obj(o.status)?.loadBalancer)?.ingress)) {
    const e = obj(entry);
    const ip = str(e?.ip);
    const host = str(e?.hostname);
    if (ip && isIP(ip)) addresses.push(ip);
    else if (host) hostnames.push(normalizeName(host));
  }
  return { addresses, hostnames };
}

/** Addresses and host names from a Gateway's `status.addresses` (type IPAddress, the default, or Hostname). */
function gatewayTargets(g: JsonObject): { addresses: string[]; hostnames: string[] } {
  const addresses: string[] = [];
  const hostnames: string[] = [];
  for (const entry of arr(obj(g.status)?.addresses)) {
    const e = obj(entry);
    const value = str(e?.value);
    if (!value) continue;
    const type = str(e?.type) ?? 'IPAddress';
    if (type === 'IPAddress' && isIP(value)) addresses.push(value);
    else if (type === 'Hostname') hostnames.push(normalizeName(value));
  }
  return { addresses, hostnames };
}

/** The claim of one host: addresses win over host names; of several host names the first in order is the CNAME target. */
function claim(ref: ObjectRef, tenant: string, host: string, t: { addresses: string[]; hostnames: string[] }): Claim {
  const addresses = [...new Set(t.addresses)].sort();
  const target = addresses.length === 0 ? [...new Set(t.hostnames)].sort()[0] : undefined;
  return { ref, tenant, host: normalizeName(host), addresses, ...(target ? { target } : {}) };
}

/**
 * The tenants a ClusterDNSPolicy selects: with `selector.tenants`, those
 * (further limited to tenants with a namespace `namespaceSelector` matches,
 * when that is given too); with `namespaceSelector` alone, the tenants of the
 * namespaces it matches; without a selector, every tenant of a namespace.
 */
function selectedTenants(policy: JsonObject, namespaces: ReadonlyMap<string, NamespaceInfo>): Set<string> {
  const selector = obj(obj(policy.spec)?.selector);
  const listed = selector?.tenants === undefined ? undefined : new Set(arr(selector.tenants).filter((t): t is string => typeof t === 'string'));
  const nsSelector = obj(selector?.namespaceSelector);
  if (listed && !nsSelector) return listed;
  const out = new Set<string>();
  for (const ns of namespaces.values()) {
    if (listed && !listed.has(ns.tenant)) continue;
    if (selectorMatches(nsSelector as never, ns.labels)) out.add(ns.tenant);
  }
  return out;
}

/**
 * The parent Gateways of an HTTPRoute, as `namespace/name` keys: its
 * `parentRefs` of kind Gateway (a ref without `namespace` is the route's).
 */
export function parentGateways(route: JsonObject): string[] {
  const ref = refOf(route, 'HTTPRoute', `${GATEWAY_API_GROUP}/v1`);
  const out: string[] = [];
  for (const p of arr(obj(route.spec)?.parentRefs)) {
    const parent = obj(p);
    if (!parent || (str(parent.group) ?? GATEWAY_API_GROUP) !== GATEWAY_API_GROUP || (str(parent.kind) ?? 'Gateway') !== 'Gateway') continue;
    out.push(`${str(parent.namespace) ?? ref.namespace}/${str(parent.name) ?? ''}`);
  }
  return out;
}

/**
 * Reads what the objects claim and assign. `extraDomains` (`--tenant-domain`)
 * are added to what ClusterDNSPolicies assign. Objects of a namespace not
 * among `objects.namespaces` belong to the tenant named like the namespace.
 */
export function readSources(objects: SourceObjects, tenantLabel = DEFAULT_TENANT_LABEL, extraDomains: ReadonlyMap<string, readonly string[]> = new Map()): SourceView {
  const namespaces = namespaceInfo(objects.namespaces, tenantLabel);
  const tenantOf = (ref: ObjectRef) => namespaces.get(ref.namespace)?.tenant ?? ref.namespace;
  const claims: Claim[] = [];

  for (const ing of objects.ingresses) {
    const ref = refOf(ing, 'Ingress', 'networking.k8s.io/v1');
    const targets = loadBalancerTargets(ing);
    const hosts = new Set(arr(obj(ing.spec)?.rules).map((r) => str(obj(r)?.host)).filter((h): h is string => !!h));
    for (const host of hosts) claims.push(claim(ref, tenantOf(ref), host, targets));
  }

  for (const svc of objects.services) {
    if (obj(svc.spec)?.type !== 'LoadBalancer') continue;
    const annotation = str(obj(obj(svc.metadata)?.annotations)?.[HOSTNAME_ANNOTATION]);
    if (!annotation) continue;
    const ref = refOf(svc, 'Service', 'v1');
    const targets = loadBalancerTargets(svc);
    const hosts = new Set(annotation.split(',').map((h) => h.trim()).filter(Boolean));
    for (const host of hosts) claims.push(claim(ref, tenantOf(ref), host, targets));
  }

  const gateways = new Map<string, JsonObject>();
  for (const g of objects.gateways) {
    const ref = refOf(g, 'Gateway', `${GATEWAY_API_GROUP}/v1`);
    gateways.set(`${ref.namespace}/${ref.name}`, g);
  }
  for (const route of objects.httpRoutes) {
    const ref = refOf(route, 'HTTPRoute', `${GATEWAY_API_GROUP}/v1`);
    const spec = obj(route.spec) ?? {};
    const targets = { addresses: [] as string[], hostnames: [] as string[] };
    for (const key of parentGateways(route)) {
      const g = gateways.get(key);
      if (!g) continue;
      const t = gatewayTargets(g);
      targets.addresses.push(...t.addresses);
      targets.hostnames.push(...t.hostnames);
    }
    const hosts = new Set(arr(spec.hostnames).filter((h): h is string => typeof h === 'string' && h !== ''));
    for (const host of hosts) claims.push(claim(ref, tenantOf(ref), host, targets));
  }

  const domains = new Map<string, Set<string>>();
  const assign = (tenant: string, domain: string) => {
    const set = domains.get(tenant) ?? new Set<string>();
    set.add(normalizeName(domain));
    domains.set(tenant, set);
  };
  for (const policy of objects.clusterPolicies) {
    const list = arr(obj(policy.spec)?.domains).filter((d): d is string => typeof d === 'string' && d !== '');
    if (list.length === 0) continue;
    for (const tenant of selectedTenants(policy, namespaces)) for (const d of list) assign(tenant, d);
  }
  for (const [tenant, list] of extraDomains) for (const d of list) assign(tenant, d);
  return { claims, domains: new Map([...domains].map(([t, s]) => [t, [...s].sort()])) };
}
