/**
 * The autopath stage in a pipeline of the real policy, split and cache
 * stages and a forward stage answering from a table (counting what reaches
 * it): which questions start a walk, what the client gets at each ending,
 * and that the client's next questions are answered from the cache.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Registry } from 'prom-client';
import { autopathSearch, parseResolvSearch, searchConfig, type SearchConfig } from '../../../sidecar/autopath/search.ts';
import { pipelineBed, type Bed, type Table } from '../../helpers/pipeline-bed.ts';

const SEARCH = ['team-a.svc.cluster.local', 'svc.cluster.local', 'cluster.local'];

const TABLE: Table = {
  'web.team-a.svc.cluster.local': { A: '198.51.100.80' },
  'db.team-b.svc.cluster.local': { A: '198.51.100.81' },
  'broker.kafka.example': { A: '192.0.2.10', AAAA: '2001:db8::10' },
  'mx-only.example': {},
  'tracker.blocked.example': { A: '192.0.2.66' },
};

const POLICY = `rules:
  - { name: no-tracking, action: deny, names: ["*.blocked.example"], response: { type: sinkhole, addresses: ["0.0.0.0"] } }
  - { name: no-team-c, action: deny, names: ["*.team-c.svc.cluster.local"] }
`;

function bed(search: SearchConfig | null = searchConfig(SEARCH, 5)!, fail?: (name: string) => boolean): Bed {
  return pipelineBed({ table: TABLE, policy: POLICY, ...(search ? { search } : {}), ...(fail ? { fail } : {}) });
}

async function counter(registry: Registry, name: string, labels = ''): Promise<number> {
  const text = await registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `) || (labels === '' && l.startsWith(`${name} `)));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

test('autopath search: resolv.conf search and ndots as glibc reads them (last line wins, ndots capped at 15)', () => {
  assert.deepEqual(parseResolvSearch('nameserver 127.0.0.1\ndomain a.example\nsearch x.example y.example # c\noptions ndots:3 timeout:1 ndots:20\n'), { search: ['x.example', 'y.example'], ndots: 15 });
  assert.deepEqual(parseResolvSearch('search x.example\ndomain d.example\n'), { search: ['d.example'] });
  assert.equal(searchConfig([], 5), undefined);
  assert.deepEqual(searchConfig(['A.Example.', 'a.example', '.'], undefined)?.domains.map((d) => d.name), ['a.example']);
  assert.equal(searchConfig(['a.example'], undefined)?.ndots, 1);
});

test('autopath search: flags win over resolv.conf, ndots falls back to the file; no list, or --autopath=false, is no autopath', () => {
  const file = () => 'search f.example\noptions ndots:4\n';
  const base = { autopath: true, search: [] as string[], resolvConf: '/x' };
  assert.deepEqual(autopathSearch({ ...base, search: ['s.example'] }, file).search?.ndots, 4);
  assert.equal(autopathSearch({ ...base, search: ['s.example'] }, file).source, 'flags');
  assert.deepEqual(autopathSearch({ ...base, search: ['s.example'], ndots: 7 }, () => { throw new Error('unread'); }).search?.ndots, 7);
  assert.deepEqual(autopathSearch(base, file).search?.domains.map((d) => d.name), ['f.example']);
  assert.equal(autopathSearch(base, () => { throw new Error('ENOENT'); }).search, undefined);
  assert.equal(autopathSearch(base, () => 'nameserver 127.0.0.1\n').source, 'none');
  assert.equal(autopathSearch({ ...base, autopath: false }, file).search, undefined);
});

test('autopath: the asked name answers itself: its own answer, nothing else asked', async () => {
  const b = bed();
  const { reply, outcome } = await b.ask('web.team-a.svc.cluster.local');
  assert.deepEqual(reply.answers.map((a) => [a.name, a.type, a.data]), [['web.team-a.svc.cluster.local', 'A', '198.51.100.80']]);
  assert.equal(outcome.source, 'upstream');
  assert.deepEqual(b.asked, ['web.team-a.svc.cluster.local A']);
  assert.equal(await counter(b.metrics, 'tenant_dns_autopath_answers_total', 'result="first"'), 1);
});

test('autopath: an external name is found at the end of the walk: CNAME from the asked name, its records, the client\'s case kept', async () => {
  const b = bed();
  const { reply, outcome } = await b.ask('Broker.KAFKA.example.team-a.svc.cluster.local', 'AAAA');
  assert.equal(reply.rcode, 'NOERROR');
  assert.deepEqual(reply.questions, [{ name: 'Broker.KAFKA.example.team-a.svc.cluster.local', type: 'AAAA', class: 'IN' }]);
  assert.deepEqual(reply.answers.map((a) => [a.name, a.type, a.data]), [
    ['Broker.KAFKA.example.team-a.svc.cluster.local', 'CNAME', 'Broker.KAFKA.example'],
    ['Broker.KAFKA.example', 'AAAA', '2001:db8::10'],
  ]);
  assert.ok(reply.answers[0]!.ttl <= 30, 'the CNAME lives no longer than the NXDOMAINs it stands for');
  assert.equal(outcome.reason, 'autopath:default');
  // An AAAA walk asks A first: each name that does not exist goes upstream once, its AAAA answered from that NXDOMAIN.
  assert.deepEqual(b.asked, [
    ...['broker.kafka.example.team-a.svc.cluster.local', 'broker.kafka.example.svc.cluster.local', 'broker.kafka.example.cluster.local', 'broker.kafka.example'].map((n) => `${n} A`),
    'broker.kafka.example AAAA',
  ]);
  assert.equal(await counter(b.metrics, 'tenant_dns_autopath_queries_saved_total'), 3);
  // The client's own queries for the rest of the walk, should it send them, are cache hits.
  for (const n of ['broker.kafka.example.svc.cluster.local', 'broker.kafka.example.cluster.local', 'broker.kafka.example']) {
    assert.equal((await b.ask(n, 'AAAA')).outcome.source, 'cache', n);
  }
  assert.equal(b.asked.length, 5);
});

test('autopath: svc.ns of another namespace: A found with a CNAME, AAAA NODATA answered CNAME + SOA (the A side has data)', async () => {
  const b = bed();
  const a = await b.ask('db.team-b.team-a.svc.cluster.local', 'A');
  assert.deepEqual(a.reply.answers.map((r) => [r.name, r.type, r.data]), [
    ['db.team-b.team-a.svc.cluster.local', 'CNAME', 'db.team-b.svc.cluster.local'],
    ['db.team-b.svc.cluster.local', 'A', '198.51.100.81'],
  ]);
  const aaaa = await b.ask('db.team-b.team-a.svc.cluster.local', 'AAAA');
  assert.equal(aaaa.reply.rcode, 'NOERROR');
  assert.deepEqual(aaaa.reply.answers.map((r) => [r.type, r.data]), [['CNAME', 'db.team-b.svc.cluster.local']]);
  assert.deepEqual(aaaa.reply.authorities.map((r) => r.type), ['SOA']);
  // The AAAA walk's look at A for db.team-b.svc.cluster.local was a cache hit: A asked upstream once per name.
  assert.equal(b.asked.filter((x) => x === 'db.team-b.svc.cluster.local A').length, 1);
});

test('autopath: NODATA for both families ends the walk at a name the libcs treat differently: the asked name\'s NXDOMAIN, the client walks on', async () => {
  const b = bed();
  const { reply } = await b.ask('mx-only.example.team-a.svc.cluster.local', 'A');
  assert.equal(reply.rcode, 'NXDOMAIN');
  assert.equal(await counter(b.metrics, 'tenant_dns_autopath_answers_total', 'result="passthrough"'), 1);
});

test('autopath: every name NXDOMAIN: the asked name\'s NXDOMAIN, and the rest of the walk is in the cache', async () => {
  const b = bed();
  const { reply } = await b.ask('nope.team-a.svc.cluster.local', 'A');
  assert.equal(reply.rcode, 'NXDOMAIN');
  assert.deepEqual(reply.authorities.map((r) => r.type), ['SOA']);
  assert.equal(b.asked.length, 4);
  for (const n of ['nope.svc.cluster.local', 'nope.cluster.local', 'nope']) assert.equal((await b.ask(n)).outcome.source, 'cache', n);
  assert.equal(await counter(b.metrics, 'tenant_dns_autopath_answers_total', 'result="nxdomain"'), 1);
});

test('autopath: policy applies to each name: a denied expansion is NXDOMAIN like the client would see, a sinkhole found is the answer', async () => {
  const b = bed();
  const denied = await b.ask('web.team-c.team-a.svc.cluster.local', 'A');
  assert.equal(denied.reply.rcode, 'NXDOMAIN');
  assert.ok(!b.asked.includes('web.team-c.svc.cluster.local A'), 'a denied name never leaves the pod');
  const sink = await b.ask('tracker.blocked.example.team-a.svc.cluster.local', 'A');
  assert.deepEqual(sink.reply.answers.map((r) => [r.type, r.data]), [['CNAME', 'tracker.blocked.example'], ['A', '0.0.0.0']]);
  assert.equal(sink.outcome.ede?.code, 15);
  assert.ok(!b.asked.includes('tracker.blocked.example A'));
  assert.equal(await counter(b.metrics, 'tenant_dns_autopath_answers_total', 'result="denied"'), 1);
});

test('autopath: an error at a later name gives the asked name\'s answer back (the client meets the error itself)', async () => {
  const b = bed(searchConfig(SEARCH, 5)!, (n) => n === 'broker.kafka.example.svc.cluster.local');
  const { reply } = await b.ask('broker.kafka.example.team-a.svc.cluster.local', 'A');
  assert.equal(reply.rcode, 'NXDOMAIN');
  assert.equal(await counter(b.metrics, 'tenant_dns_autopath_answers_total', 'result="passthrough"'), 1);
});

test('autopath: not a walk: ndots dots or more, not under the first search domain, RD=0, another type or class, no search list', async () => {
  const cases: [string, 'A' | 'TXT', { rd?: boolean; klass?: 'IN' | 'CH' }][] = [
    ['broker.kafka.example.svc.cluster.local', 'A', {}],
    ['broker.kafka.example.team-a.svc.cluster.local', 'A', { rd: false }],
    ['broker.kafka.example.team-a.svc.cluster.local', 'TXT', {}],
    ['broker.kafka.example.team-a.svc.cluster.local', 'A', { klass: 'CH' }],
  ];
  for (const [name, type, opts] of cases) {
    const b = bed();
    await b.ask(name, type, opts);
    assert.equal(b.asked.length, 1, `${name} ${type} ${JSON.stringify(opts)}: ${b.asked.join(', ')}`);
  }
  const deep = bed();
  await deep.ask('a.b.c.d.e.f.team-a.svc.cluster.local'); // N has 5 dots, ndots 5: the client tried N first, no walk
  assert.equal(deep.asked.length, 1);
  const none = bed(null);
  await none.ask('broker.kafka.example.team-a.svc.cluster.local');
  assert.equal(none.asked.length, 1);
});

test('autopath: A and AAAA of one name walk in parallel, each on its own; identical questions in flight share one exchange', async () => {
  const b = bed();
  const [a, aaaa, again] = await Promise.all([
    b.ask('broker.kafka.example.team-a.svc.cluster.local', 'A'),
    b.ask('broker.kafka.example.team-a.svc.cluster.local', 'AAAA'),
    b.ask('broker.kafka.example.team-a.svc.cluster.local', 'A'),
  ]);
  assert.deepEqual(a.reply.answers.map((r) => r.type), ['CNAME', 'A']);
  assert.deepEqual(aaaa.reply.answers.map((r) => r.type), ['CNAME', 'AAAA']);
  assert.deepEqual(again.reply.answers, a.reply.answers);
  assert.deepEqual(b.asked.sort(), [
    ...['broker.kafka.example.team-a.svc.cluster.local', 'broker.kafka.example.svc.cluster.local', 'broker.kafka.example.cluster.local', 'broker.kafka.example'].map((n) => `${n} A`),
    'broker.kafka.example AAAA',
  ].sort(), 'each name that does not exist once, the found one once per type');
});
