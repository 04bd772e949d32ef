/**
 * The cluster zone: the cluster domain and the reverse zones the sidecar
 * sends to the cluster DNS, never to a default upstream. Shared by the
 * router (server.ts) and `policy explain`, so both route a name alike.
 */
import { findZone, normalizeName } from '../dns/wire.ts';
import { fieldSchema } from './schema.ts';

/** The configured defaults: `cluster.local`, and `in-addr.arpa` and `ip6.arpa`. */
export const CLUSTER_DEFAULTS = {
  clusterDomain: (fieldSchema('clusterDomain') as { default: string }).default,
  clusterReverseZones: (fieldSchema('clusterReverseZones') as { default: string[] }).default,
} as const;

/** The cluster zones in the sidecar's name form. */
export function clusterZones(clusterDomain: string, reverseZones: readonly string[]): string[] {
  return [clusterDomain, ...reverseZones].map(normalizeName);
}

/** Whether a cluster zone is a reverse zone (under `arpa`) rather than the cluster domain. */
export function isReverseZone(zone: string): boolean {
  return zone === 'arpa' || zone.endsWith('.arpa');
}

/** The cluster zone `qname` lies in, or undefined when it lies in none. */
export function clusterZoneOf(qname: string, zones: readonly string[]): string | undefined {
  return findZone(qname, zones);
}

/**
 * Whether `qname` (sidecar form) lies below `<ns>.svc.<clusterDomain>` in a
 * shape the Kubernetes DNS specification cannot produce there: one label
 * (a Service), two (an endpoint's or a pod's hostname under its Service or
 * subdomain) or `_port._proto.<service>` (SRV) exist; anything longer, or
 * three labels that are not SRV labels, does not (the search-list expansions
 * of external names, `api.github.com.team-a.svc.cluster.local`, are such
 * names). `clusterDomain` is in sidecar form.
 */
export function impossibleServiceName(qname: string, clusterDomain: string): boolean {
  const suffix = `.svc.${clusterDomain}`;
  if (!qname.endsWith(suffix)) return false;
  // [..., namespace]: the labels before `svc`.
  const labels = qname.slice(0, qname.length - suffix.length).split('.');
  const below = labels.length - 1;
  if (below <= 2) return false;
  return below > 3 || !labels[0]!.startsWith('_') || !labels[1]!.startsWith('_');
}
