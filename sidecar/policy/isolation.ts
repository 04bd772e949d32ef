/**
 * Tenant service-discovery isolation (platform layer only): which cluster
 * names belong to a namespace the pod may not discover. Pure; called by the
 * one classification of a question (route/classify.ts), so the pipeline, the
 * check of every name in an answer and `policy explain` decide it alike.
 *
 * The names concerned are those of the Kubernetes DNS specification that
 * carry a namespace: `<ns>.svc.<cluster-domain>` (Services, their endpoints'
 * hostnames and SRV names) and `<ns>.pod.<cluster-domain>` (pod A records),
 * each with every name below it; `ns` is the label right before `svc` or
 * `pod`. Other names in the cluster domain (`svc.cluster.local`,
 * `cluster.local`, anything else) are not affected, nor are reverse names:
 * a PTR lookup of a Service's address still returns its name.
 */
import { ISOLATION_RULE } from '../config/policy-schema.ts';
import { DEFAULT_DENY_TTL, type CompiledIsolation, type DenyResponse, type Evaluation } from './compile.ts';

/** The labels of a name in the sidecar's form, split at the dots that are not escaped (`a\.b` is one label). */
function labelsOf(name: string): string[] {
  if (!name.includes('\\')) return name.split('.');
  const out: string[] = [];
  let start = 0;
  for (let i = 0; i < name.length; i++) {
    if (name[i] === '\\') i++;
    else if (name[i] === '.') {
      out.push(name.slice(start, i));
      start = i + 1;
    }
  }
  out.push(name.slice(start));
  return out;
}

/**
 * The namespace a name in the cluster domain `clusterDomain` belongs to for
 * service discovery: `ns` for `<ns>.svc.<clusterDomain>`, `<ns>.pod.<clusterDomain>`
 * and any name below them; undefined for every other name. Both in the
 * sidecar's form (lower case, no trailing dot); `qname` lies in `clusterDomain`.
 */
export function discoveryNamespace(qname: string, clusterDomain: string): string | undefined {
  const labels = labelsOf(qname);
  const zone = clusterDomain.split('.');
  const kind = labels.length - zone.length - 1;
  if (kind < 1) return undefined;
  for (let i = 0; i < zone.length; i++) if (labels[kind + 1 + i] !== zone[i]) return undefined;
  return labels[kind] === 'svc' || labels[kind] === 'pod' ? labels[kind - 1] : undefined;
}

/** How isolation answers: NXDOMAIN with an SOA, as a deny rule's default response (never the policy's `defaultResponse`: a search-list walk must go on past it). */
const ISOLATION_RESPONSE: DenyResponse = Object.freeze({ type: 'nxdomain', addresses: Object.freeze([]), ttl: DEFAULT_DENY_TTL });

const ISOLATION_DECISION = Object.freeze({ action: 'deny', rule: ISOLATION_RULE, log: true } as const);

/**
 * The deny of `qname` (sidecar form, inside the cluster domain `clusterDomain`)
 * under `isolation`: the evaluation of rule {@link ISOLATION_RULE} when the
 * name belongs to a namespace the pod may not discover, else undefined. The
 * answer's SOA is the cluster domain's, as kube-dns gives for a name it does not have.
 */
export function isolationDeny(isolation: CompiledIsolation, clusterDomain: string, qname: string): Evaluation | undefined {
  const ns = discoveryNamespace(qname, clusterDomain);
  if (ns === undefined || isolation.visible.has(ns)) return undefined;
  return Object.freeze({
    decision: ISOLATION_DECISION,
    response: ISOLATION_RESPONSE,
    ruleGlob: '',
    layer: 'platform',
    ruleName: ISOLATION_RULE,
    soaZone: clusterDomain,
    isolatedNamespace: ns,
  });
}
