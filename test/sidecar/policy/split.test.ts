import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as packet from 'dns-packet';
import { createSplitStage, type ResolveFn } from '../../../sidecar/policy/split.ts';
import type { Outcome } from '../../../sidecar/pipeline/stage.ts';
import { compose } from '../../../sidecar/pipeline/compose.ts';
import { ErrorCodes, SidecarError } from '../../../sidecar/errors.ts';
import { compiled, decode, queryContext, type Decoded } from './helpers.ts';

const SPEC = [
  'forwardZones:',
  '  - {name: corp, zones: [corp.example], upstreams: ["udp://10.0.0.53:53"]}',
  'splitZones:',
  '  - {name: static, names: ["*.db.test"], addresses: [10.1.0.1, 10.1.0.2, "fd00::1"], ttl: 45}',
  '  - {name: v4only, names: [v4.test], addresses: [10.2.0.1]}',
  '  - {name: kafka, names: ["*.eu-west-1.kafka.managed.service"], cname: vpce-1.vpce.amazonaws.com, ttl: 60, resolveVia: corp}',
].join('\n');

const NEXT: Outcome = { kind: 'reply', body: Buffer.alloc(12), rcode: 0, source: 'upstream', reason: 'fake' };

function targetReply(name: string, qtype: number, rcode: 'NOERROR' | 'NXDOMAIN' = 'NOERROR'): Buffer {
  const type = qtype === 28 ? 'AAAA' : 'A';
  return packet.encode({
    id: 1,
    type: 'response',
    // dns-packet encodes the rcode only from the flags word.
    flags: packet.RECURSION_AVAILABLE | (rcode === 'NXDOMAIN' ? 3 : 0),
    questions: [{ name, type, class: 'IN' }],
    answers:
      rcode === 'NOERROR'
        ? type === 'A'
          ? [
              { name, type: 'A', class: 'IN', ttl: 20, data: '172.31.0.10' },
              { name, type: 'A', class: 'IN', ttl: 20, data: '172.31.0.11' },
            ]
          : [{ name, type: 'AAAA', class: 'IN', ttl: 20, data: 'fd00::10' }]
        : [],
  } as packet.Packet);
}

async function run(name: string, type: packet.RecordType, resolve: ResolveFn = async () => assert.fail('resolve not expected'), internal = false) {
  const stage = createSplitStage(resolve);
  let nextCalls = 0;
  const outcome = await stage.handle(queryContext(name, type, { internal, policy: compiled(SPEC) }), async () => {
    nextCalls++;
    return NEXT;
  });
  return { outcome, nextCalls, decoded: outcome === NEXT ? undefined : decode(outcome.body) };
}

const data = (d: Decoded) => d.answers.map((a) => `${a.name} ${a.ttl} ${a.type} ${a.data}`);

test('split stage: names outside split zones go to next', async () => {
  const r = await run('db.test', 'A');
  assert.equal(r.nextCalls, 1);
  assert.equal(r.outcome, NEXT);
});

test('split stage: static zone answers A with the zone TTL', async () => {
  const r = await run('x.y.db.test', 'A');
  assert.equal(r.outcome.source, 'local');
  assert.equal(r.outcome.reason, 'static');
  assert.equal(r.decoded!.rcode, 'NOERROR');
  assert.deepEqual(data(r.decoded!), ['x.y.db.test 45 A 10.1.0.1', 'x.y.db.test 45 A 10.1.0.2']);
  assert.deepEqual(data((await run('x.db.test', 'AAAA')).decoded!), ['x.db.test 45 AAAA fd00::1']);
});

test('split stage: a type with no data is NODATA (NOERROR + SOA), never NXDOMAIN', async () => {
  for (const [name, type] of [['v4.test', 'AAAA'], ['a.db.test', 'MX'], ['a.db.test', 'TXT']] as const) {
    const r = await run(name, type);
    assert.equal(r.outcome.rcode, 0);
    assert.equal(r.decoded!.rcode, 'NOERROR');
    assert.equal(r.decoded!.answers!.length, 0);
    assert.equal(r.decoded!.authorities![0]!.type, 'SOA');
  }
  assert.equal((await run('v4.test', 'AAAA')).decoded!.authorities![0]!.name, 'v4.test');
});

test('split stage: cname zone answers the CNAME then the target records via the group', async () => {
  const calls: unknown[] = [];
  const resolve: ResolveFn = async (name, qtype, group, signal) => {
    calls.push([name, qtype, group, signal instanceof AbortSignal]);
    return targetReply(name, qtype);
  };
  const r = await run('b-1.eu-west-1.kafka.managed.service', 'A', resolve);
  assert.deepEqual(calls, [['vpce-1.vpce.amazonaws.com', 1, 'corp', true]]);
  assert.equal(r.outcome.source, 'local');
  assert.equal(r.outcome.reason, 'kafka');
  assert.equal(r.decoded!.rcode, 'NOERROR');
  assert.deepEqual(data(r.decoded!), [
    'b-1.eu-west-1.kafka.managed.service 60 CNAME vpce-1.vpce.amazonaws.com',
    'vpce-1.vpce.amazonaws.com 20 A 172.31.0.10',
    'vpce-1.vpce.amazonaws.com 20 A 172.31.0.11',
  ]);
  const six = await run('b-1.eu-west-1.kafka.managed.service', 'AAAA', resolve);
  assert.equal(data(six.decoded!)[1], 'vpce-1.vpce.amazonaws.com 20 AAAA fd00::10');
});

test('split stage: the rcode follows the target reply', async () => {
  const r = await run('b-2.eu-west-1.kafka.managed.service', 'A', async (n, t) => targetReply(n, t, 'NXDOMAIN'));
  assert.equal(r.outcome.rcode, 3);
  assert.equal(r.decoded!.rcode, 'NXDOMAIN');
  assert.equal(r.decoded!.answers![0]!.type, 'CNAME');
});

test('split stage: qtype CNAME gets just the CNAME', async () => {
  const r = await run('b-1.eu-west-1.kafka.managed.service', 'CNAME');
  assert.deepEqual(data(r.decoded!), ['b-1.eu-west-1.kafka.managed.service 60 CNAME vpce-1.vpce.amazonaws.com']);
});

test('split stage: a failing resolve is thrown to the composer, which answers SERVFAIL with its EDE and reports it once', async () => {
  const failure = new SidecarError(ErrorCodes.UPSTREAM_GROUP_FAILED, 'resolving through group corp: every upstream failed', {
    ede: { code: 23, text: 'no upstream of group corp answered' },
  });
  for (const resolve of [async () => Promise.reject(failure), async () => Buffer.from([1, 2, 3])] as ResolveFn[]) {
    const reported: unknown[] = [];
    const chain = compose({ split: createSplitStage(resolve) }, (err) => reported.push(err));
    const outcome = await chain(queryContext('b-1.eu-west-1.kafka.managed.service', 'A', { policy: compiled(SPEC) }));
    assert.equal(outcome.rcode, 2);
    assert.equal(decode(outcome.body).rcode, 'SERVFAIL');
    assert.equal(reported.length, 1);
    if (reported[0] === failure) assert.deepEqual(outcome.ede, { code: 23, text: 'no upstream of group corp answered' });
  }
});

test('split stage: internal queries pass through', async () => {
  const r = await run('x.db.test', 'A', undefined, true);
  assert.equal(r.nextCalls, 1);
});
