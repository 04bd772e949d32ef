/**
 * Micro-benchmark of the cache hit, THE hot path (DESIGN §4, issue 7).
 *
 * Run:     node test/bench/cache-hit.bench.ts          (about 2 s; no arguments)
 * Compare: `store.get + ID patch` against `Buffer copy`, a plain copy of the
 *          same reply bytes — the floor, since a hit must at least copy the
 *          reply the receiver owns. The ratio says what the cache adds on top
 *          of that copy (map lookup, LRU touch, TTL decrement); aim for < 2×.
 *          `stage.handle hit` is the whole cache stage on a hit (key string,
 *          lookup, ID/question/flags patch, Outcome and Promise), for context.
 * Output:  one line per case with ns/op, then the ratio to the floor.
 * Note:    the query name is the same string object on every iteration, so its
 *          hash is cached; in the sidecar the wire reader makes a new name
 *          string per query and the first Map lookup hashes it (a few tens of
 *          ns for a typical name), which this benchmark does not count.
 */
import * as packet from 'dns-packet';
import { scanReply } from '../../sidecar/dns/records.ts';
import { readQuery } from '../../sidecar/dns/wire.ts';
import { CacheStore, type CacheConfig } from '../../sidecar/cache/store.ts';
import { CacheStage, subKey } from '../../sidecar/cache/stage.ts';
import type { QueryContext } from '../../sidecar/pipeline/stage.ts';
import { internalRoute } from '../../sidecar/route/classify.ts';

const CONFIG: CacheConfig = { maxEntries: 10_000, maxBytes: 16 << 20, minTtl: 0, maxTtl: 86_400, negativeMaxTtl: 3_600, clusterNegativeMaxTtl: 5, staleMaxAge: 0, staleMaxPerSecond: 0, staleAnswerTimeoutMs: 0 };

// A typical reply: a CNAME and two addresses, as kube-dns or a public resolver sends them (no OPT: bodies carry none).
const name = 'api.example.com';
const body = packet.encode({
  id: 1,
  type: 'response',
  flags: 0x0180,
  questions: [{ name, type: 'A', class: 'IN' }],
  answers: [
    { type: 'CNAME', name, ttl: 300, class: 'IN', data: 'edge.example.net' },
    { type: 'A', name: 'edge.example.net', ttl: 60, class: 'IN', data: '192.0.2.10' },
    { type: 'A', name: 'edge.example.net', ttl: 60, class: 'IN', data: '192.0.2.11' },
  ],
} as packet.Packet);
const wire = packet.encode({ id: 4242, type: 'query', flags: 0x0100, questions: [{ name: 'Api.Example.com', type: 'A', class: 'IN' }] } as packet.Packet);
const parsed = readQuery(wire).query!;

let t = 0;
const now = () => t;
const store = new CacheStore({ config: CONFIG, now });
const sub = subKey(parsed);
store.set(parsed.qname, sub, body, scanReply(body));
// Fill with other names so the lookup is in a realistic map.
for (let i = 0; i < 1_000; i++) store.set(`n${i}.example.com`, sub, body, scanReply(body));
t = 5_000; // 5 s later: the TTL loop runs on every hit.

const stage = new CacheStage({ config: CONFIG, clock: now });
stage.store.set(parsed.qname, sub, body, scanReply(body));
const ctx: QueryContext = { wire, query: parsed, proto: 'udp', signal: new AbortController().signal, startedAt: 0, route: internalRoute('default'), internal: false };
const never = () => Promise.reject(new Error('the bench only measures hits'));

let sink = 0;
const cases: Record<string, () => void> = {
  'Buffer copy (floor)': () => {
    const out = Buffer.from(body);
    sink ^= out[0]!;
  },
  'store.get + ID patch': () => {
    const out = store.get(parsed.qname, sub)!;
    out[0] = parsed.id >>> 8;
    out[1] = parsed.id & 0xff;
    sink ^= out[5]!;
  },
  'stage.handle hit': () => {
    void stage.handle(ctx, never);
    sink ^= 1;
  },
};

function measure(fn: () => void, ms: number): number {
  for (let i = 0; i < 50_000; i++) fn(); // warm up
  let ops = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  let nowNs = start;
  while (nowNs < end) {
    for (let i = 0; i < 10_000; i++) fn();
    ops += 10_000;
    nowNs = process.hrtime.bigint();
  }
  return Number(nowNs - start) / ops;
}

const results: Record<string, number> = {};
for (const [label, fn] of Object.entries(cases)) results[label] = measure(fn, 550);
const floor = results['Buffer copy (floor)']!;
console.log(`cache hit, reply of ${body.length} bytes with 3 TTLs (node ${process.version})`);
for (const [label, ns] of Object.entries(results)) {
  console.log(`${label.padEnd(22)} ${ns.toFixed(1).padStart(7)} ns/op   ${(ns / floor).toFixed(2)}× the floor`);
}
if (sink === -1) console.log('');
