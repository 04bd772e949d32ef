/**
 * Builders for the cache and records tests: queries and upstream replies
 * encoded with dns-packet (fine in tests; never on the hot path).
 */
import * as packet from 'dns-packet';
import { Flags, RCode } from '../../../sidecar/dns/constants.ts';
import { readQuery, type ParsedQuery } from '../../../sidecar/dns/wire.ts';
import type { Outcome, QueryContext } from '../../../sidecar/pipeline/stage.ts';
import { classify, internalRoute } from '../../../sidecar/route/classify.ts';
import { compilePolicy } from '../../../sidecar/policy/compile.ts';

/** Options of {@link query}. */
export interface QueryOptions {
  id?: number;
  type?: packet.RecordType;
  dnssecOk?: boolean;
  cd?: boolean;
  rd?: boolean;
  edns?: boolean;
}

/** A client query for `name` (spelled as given, so 0x20 case survives). */
export function query(name: string, options: QueryOptions = {}): Buffer {
  const flags = (options.rd === false ? 0 : Flags.RD) | (options.cd ? Flags.CD : 0);
  const additionals: packet.Answer[] = [];
  if (options.edns || options.dnssecOk) {
    additionals.push({ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: options.dnssecOk ? 0x8000 : 0, options: [] } as unknown as packet.Answer);
  }
  return packet.encode({
    id: options.id ?? 1,
    type: 'query',
    flags,
    questions: [{ name, type: options.type ?? 'A', class: 'IN' }],
    additionals,
  } as packet.Packet);
}

/** Parses a query built by {@link query}. */
export function parse(wire: Buffer): ParsedQuery {
  const r = readQuery(wire);
  if (!r.query) throw new Error(`test query rejected: ${r.rejected.why}`);
  return r.query;
}

/** The cluster zones the test contexts are classified under. */
const CLUSTER_ZONES = ['cluster.local', 'in-addr.arpa', 'ip6.arpa'];

/** A pipeline context for a query built by {@link query}, classified under the empty policy. */
export function context(wire: Buffer): QueryContext {
  const q = parse(wire);
  const route = classify(compilePolicy(), CLUSTER_ZONES, q.qname);
  return { wire, query: q, proto: 'udp', signal: new AbortController().signal, startedAt: 0, route, decision: route.evaluation.decision, internal: false };
}

/** An internal context (the sidecar's own query) for `wire`, sent through the group `group`. */
export function internalContext(wire: Buffer, group: string): QueryContext {
  return { ...context(wire), internal: true, route: internalRoute(group), decision: undefined };
}

/** Options of {@link reply}. */
export interface ReplyOptions {
  id?: number;
  type?: packet.RecordType;
  rcode?: number;
  tc?: boolean;
  answers?: packet.Answer[];
  authorities?: packet.Answer[];
  additionals?: packet.Answer[];
}

/** An upstream reply to a question for `name`. */
export function reply(name: string, options: ReplyOptions = {}): Buffer {
  const flags = Flags.RD | Flags.RA | (options.tc ? Flags.TC : 0) | ((options.rcode ?? RCode.NOERROR) & 0x0f);
  return packet.encode({
    id: options.id ?? 1,
    type: 'response',
    flags,
    questions: [{ name, type: options.type ?? 'A', class: 'IN' }],
    answers: options.answers ?? [],
    authorities: options.authorities ?? [],
    additionals: options.additionals ?? [],
  } as packet.Packet);
}

/** An A record. */
export function a(name: string, ttl: number, address = '192.0.2.1'): packet.Answer {
  return { type: 'A', name, ttl, class: 'IN', data: address };
}

/** An SOA record for `zone` with the given TTL and MINIMUM. */
export function soa(zone: string, ttl: number, minimum: number): packet.Answer {
  return {
    type: 'SOA',
    name: zone,
    ttl,
    class: 'IN',
    data: { mname: `ns1.${zone}`, rname: `hostmaster.${zone}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum },
  } as packet.Answer;
}

/** An OPT record as an upstream sends it. */
export function opt(extendedRcode = 0): packet.Answer {
  return { type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode, flags: 0, options: [] } as unknown as packet.Answer;
}

/** The TTLs of every record of a reply, in order, through dns-packet (an independent reader). */
export function ttls(wire: Buffer): number[] {
  const p = packet.decode(wire);
  return [...(p.answers ?? []), ...(p.authorities ?? []), ...(p.additionals ?? [])]
    .filter((r) => r.type !== 'OPT')
    .map((r) => (r as { ttl?: number }).ttl ?? -1);
}

/** An upstream outcome for a reply body. */
export function upstreamOutcome(body: Buffer, rcode = body[3]! & 0x0f): Outcome {
  return { kind: 'reply', body, rcode, source: 'upstream', reason: 'udp://192.0.2.53:53', upstream: 'udp://192.0.2.53:53' };
}

/** A settable clock in milliseconds. */
export function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}
