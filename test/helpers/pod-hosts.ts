/**
 * The test hosts a simulated pod (test/helpers/pod.ts) talks to, run as one
 * process in the second network namespace, on addresses of 198.51.100.0/24
 * (TEST-NET-2):
 *
 * - 198.51.100.10:53, the "cluster DNS" (kube-dns): answers the cluster zone
 *   (`web.<ns>.svc.cluster.local` and `web-<x>.<ns>.svc.cluster.local` are
 *   IPv4 Services), NXDOMAIN with an SOA for the rest of it, REFUSED outside it;
 * - 198.51.100.53:53, a "public resolver" (plain DNS): answers every name
 *   with its own addresses, whatever a policy says;
 * - 198.51.100.85:853, a DoT server (`dns.test`, the test PKI): the sidecar's
 *   upstream; knows Kafka brokers, a dual-stack name, the name the tests deny
 *   and the barrier names; NXDOMAIN otherwise.
 *
 * Run as `node pod-hosts.ts '{"certFile":…,"keyFile":…}'`: prints
 * `{"ready":true}` once every server listens, then one JSON line per query
 * received ({@link HostQuery}), and exits when its stdin closes. Imported, it
 * only gives the addresses and answers.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as packet from 'dns-packet';
import { startDnsServer, type Face, type Peer, type TestDnsServer } from './dns-server.ts';

/** The pod network: the pod's address, the hosts' addresses, the prefix length. */
export const PodNet = {
  prefix: 24,
  pod: '198.51.100.2',
  hostsGateway: '198.51.100.1',
  clusterDns: '198.51.100.10',
  publicResolver: '198.51.100.53',
  dot: '198.51.100.85',
  /** The DoT server's TLS name (the test PKI's good certificate). */
  dotName: 'dns.test',
} as const;

/** What the test hosts answer. */
export const HostAnswers = {
  /** The ClusterIP of Service `web` (and `web-<x>`) in every namespace. */
  serviceA: '198.51.100.80',
  /** The public resolver's answer to every A and AAAA question. */
  publicA: '192.0.2.53',
  publicAaaa: '2001:db8::53',
  /** Kafka brokers (`*.kafka.eu-west-1.managed.service`) from the DoT server. */
  brokerA: '192.0.2.10',
  brokerAaaa: '2001:db8::10',
  /** `dual.example.org` from the DoT server. */
  dualName: 'dual.example.org',
  dualA: '192.0.2.1',
  dualAaaa: '2001:db8::1',
  /** `tracker.blocked.example` from the DoT server: what the sidecar's policy denies. */
  trackerName: 'tracker.blocked.example',
  trackerA: '192.0.2.66',
} as const;

/** The zone the barrier names are in (answered by the DoT server). */
export const BARRIER_ZONE = 'barrier.tenant-dns.test';

/** Which test host a query reached. */
export type HostName = 'cluster' | 'public' | 'dot';

/** One query a test host received. */
export interface HostQuery {
  readonly server: HostName;
  readonly face: Face;
  /** Lower case, without the trailing dot. */
  readonly name: string;
  readonly type: string;
  /** The client, `address:port`. */
  readonly peer: string;
}

const NOERROR = 0;
const NXDOMAIN = 3;
const REFUSED = 5;

function soa(zone: string): packet.Answer {
  return { name: zone, type: 'SOA', class: 'IN', ttl: 30, data: { mname: `ns.${zone || 'test'}`, rname: `hostmaster.${zone || 'test'}`, serial: 1, refresh: 60, retry: 60, expire: 600, minimum: 30 } } as packet.Answer;
}

function reply(query: packet.Packet, rcode: number, answers: packet.Answer[], zone?: string): packet.Packet {
  return {
    id: query.id,
    type: 'response',
    flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | rcode,
    questions: query.questions,
    answers,
    authorities: zone !== undefined && answers.length === 0 ? [soa(zone)] : [],
  };
}

/** Addresses of a name for its question type: the answer, or NODATA when the type has none. */
function addresses(query: packet.Packet, a: string | undefined, aaaa: string | undefined, zone: string): packet.Packet {
  const q = query.questions![0]!;
  const data = q.type === 'A' ? a : q.type === 'AAAA' ? aaaa : undefined;
  return reply(query, NOERROR, data ? [{ name: q.name, type: q.type, class: 'IN', ttl: 30, data } as packet.Answer] : [], zone);
}

/** kube-dns: Service `web` in every namespace; NXDOMAIN for the rest of the cluster zone. */
function clusterAnswer(query: packet.Packet): packet.Packet {
  const name = query.questions![0]!.name.toLowerCase();
  if (!name.endsWith('.cluster.local') && name !== 'cluster.local') return reply(query, REFUSED, []);
  if (/^web(-[a-z0-9]+)?\.[a-z0-9-]+\.svc\.cluster\.local$/.test(name)) return addresses(query, HostAnswers.serviceA, undefined, 'cluster.local');
  return reply(query, NXDOMAIN, [], 'cluster.local');
}

/** A public resolver that knows every name. */
function publicAnswer(query: packet.Packet): packet.Packet {
  return addresses(query, HostAnswers.publicA, HostAnswers.publicAaaa, '');
}

/** The sidecar's DoT upstream. */
function dotAnswer(query: packet.Packet): packet.Packet {
  const name = query.questions![0]!.name.toLowerCase();
  if (name.endsWith('.kafka.eu-west-1.managed.service')) return addresses(query, HostAnswers.brokerA, HostAnswers.brokerAaaa, 'managed.service');
  if (name === HostAnswers.dualName) return addresses(query, HostAnswers.dualA, HostAnswers.dualAaaa, 'example.org');
  if (name === HostAnswers.trackerName) return addresses(query, HostAnswers.trackerA, undefined, 'blocked.example');
  if (name.endsWith(`.${BARRIER_ZONE}`)) return addresses(query, '192.0.2.2', undefined, BARRIER_ZONE);
  return reply(query, NXDOMAIN, [], '');
}

async function main(config: { certFile: string; keyFile: string }): Promise<void> {
  const log = (server: HostName) => (query: packet.Packet, face: Face, peer?: Peer) => {
    const q = query.questions?.[0];
    const line: HostQuery = { server, face, name: (q?.name ?? '').toLowerCase().replace(/\.$/, ''), type: q?.type ?? '', peer: peer ? `${peer.address}:${peer.port}` : '' };
    // Written before the answer: a client that has its answer has been logged (pipes are synchronous on Linux).
    process.stdout.write(`${JSON.stringify(line)}\n`);
  };
  const serve = (server: HostName, answer: (q: packet.Packet) => packet.Packet) => (q: packet.Packet, face: Face, peer?: Peer) => {
    log(server)(q, face, peer);
    return answer(q);
  };
  const servers: TestDnsServer[] = [
    await startDnsServer({ host: PodNet.clusterDns, port: 53, handler: serve('cluster', clusterAnswer) }),
    await startDnsServer({ host: PodNet.publicResolver, port: 53, handler: serve('public', publicAnswer) }),
    await startDnsServer({
      host: PodNet.dot,
      port: 53,
      tlsPort: 853,
      tls: { cert: readFileSync(config.certFile), key: readFileSync(config.keyFile) },
      handler: serve('dot', dotAnswer),
    }),
  ];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.close()));
    process.exit(0);
  };
  process.stdin.on('end', () => void stop());
  process.stdin.resume();
  process.on('SIGTERM', () => void stop());
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main(JSON.parse(process.argv[2] ?? '{}'));
