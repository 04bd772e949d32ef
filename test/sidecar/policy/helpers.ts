/** Helpers for the policy tests: policies from YAML text, query contexts, decoding replies. */
import * as packet from 'dns-packet';
import { parsePolicy } from '../../../sidecar/policy/manager.ts';
import { compilePolicy, type CompiledPolicy } from '../../../sidecar/policy/compile.ts';
import { readQuery } from '../../../sidecar/dns/wire.ts';
import type { QueryContext } from '../../../sidecar/pipeline/stage.ts';
import { classify, internalRoute } from '../../../sidecar/route/classify.ts';
import type { DNSPolicy } from '../../../sidecar/config/policy-schema.ts';

/** A DNSPolicy from its `spec` written as YAML (indented two spaces under `spec:`). */
export function policy(spec: string, file = 'test.yaml'): DNSPolicy {
  const text = `apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata:\n  name: t\nspec:\n${spec
    .split('\n')
    .map((l) => '  ' + l)
    .join('\n')}\n`;
  return parsePolicy(text, file);
}

/** Compiles a tenant spec (and optionally a platform spec) for a pod with `labels`. */
export function compiled(tenant: string, platform?: string, labels?: Record<string, string>): CompiledPolicy {
  return compilePolicy({ tenant: policy(tenant), platform: platform === undefined ? undefined : policy(platform), podLabels: labels });
}

/** What {@link queryContext} takes besides the question. */
export interface ContextOptions {
  /** Add an OPT record. */
  readonly edns?: boolean;
  /** An internal query (the sidecar's own), sent through the group `via` (default `default`). */
  readonly internal?: boolean;
  readonly via?: string;
  /** The policy the question is classified under (default: the empty policy). */
  readonly policy?: CompiledPolicy;
  /** The cluster zones (default cluster.local and the reverse zones). */
  readonly clusterZones?: readonly string[];
}

/** A query context for `name`/`type`, classified as the listener would (or routed through `via` when internal). */
export function queryContext(name: string, type: packet.RecordType = 'A', opts: ContextOptions = {}): QueryContext {
  const wire = packet.encode({
    id: 4242,
    type: 'query',
    flags: packet.RECURSION_DESIRED,
    questions: [{ name, type, class: 'IN' }],
    additionals: opts.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0 } as unknown as packet.Answer] : [],
  });
  const r = readQuery(wire);
  if (!r.query) throw new Error(`bad test query: ${r.rejected.why}`);
  const internal = opts.internal ?? false;
  const route = internal
    ? internalRoute(opts.via ?? 'default')
    : classify(opts.policy ?? compilePolicy(), opts.clusterZones ?? ['cluster.local', 'in-addr.arpa', 'ip6.arpa'], r.query.qname);
  return {
    wire,
    query: r.query,
    proto: 'udp',
    signal: new AbortController().signal,
    startedAt: performance.now(),
    route,
    ...(internal ? {} : { decision: route.evaluation.decision }),
    internal,
  };
}

/** A decoded record, loosely typed for assertions. */
export interface Rec {
  name: string;
  type: string;
  ttl: number;
  data: any;
  options?: { code: number; data?: Buffer }[];
}

/** A decoded message, loosely typed for assertions. */
export interface Decoded {
  id: number;
  rcode: string;
  questions: { name: string; type: string }[];
  answers: Rec[];
  authorities: Rec[];
  additionals: Rec[];
}

/** Decodes a reply with dns-packet. */
export function decode(b: Buffer): Decoded {
  return packet.decode(b) as unknown as Decoded;
}
