/** Helpers for the policy tests: policies from YAML text, query contexts, decoding replies. */
import * as packet from 'dns-packet';
import { parsePolicy } from '../../../sidecar/policy/manager.ts';
import { compilePolicy, type CompiledPolicy } from '../../../sidecar/policy/compile.ts';
import { readQuery } from '../../../sidecar/dns/wire.ts';
import type { QueryContext } from '../../../sidecar/pipeline/stage.ts';
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

/** A query context for `name`/`type`, with EDNS when `edns` is true. */
export function queryContext(name: string, type: packet.RecordType = 'A', opts: { edns?: boolean; internal?: boolean } = {}): QueryContext {
  const wire = packet.encode({
    id: 4242,
    type: 'query',
    flags: packet.RECURSION_DESIRED,
    questions: [{ name, type, class: 'IN' }],
    additionals: opts.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0 } as unknown as packet.Answer] : [],
  });
  const r = readQuery(wire);
  if (!r.query) throw new Error(`bad test query: ${r.rejected.why}`);
  return { wire, query: r.query, proto: 'udp', signal: new AbortController().signal, startedAt: performance.now(), internal: opts.internal ?? false };
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
