import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as packet from 'dns-packet';
import { createPolicyStage } from '../../../sidecar/policy/stage.ts';
import { Router } from '../../../sidecar/route/classify.ts';
import { finishReply } from '../../../sidecar/dns/reply.ts';
import type { Outcome, QueryContext } from '../../../sidecar/pipeline/stage.ts';
import { compiled, decode, queryContext, type Decoded } from './helpers.ts';

const SPEC = [
  'rules:',
  '  - {name: nx, action: deny, names: ["*.com"]}',
  '  - {name: ref, action: deny, names: [refused.test], response: {type: refused}}',
  '  - {name: nod, action: deny, names: [nodata.test], response: {type: nodata, ttl: 7}}',
  '  - {name: sink, action: deny, names: ["ads-*.sink.test"], response: {type: sinkhole, addresses: [0.0.0.0, "::"], ttl: 300}}',
  '  - {name: audit, action: log, names: [audit.test]}',
].join('\n');

const UPSTREAM: Outcome = { kind: 'reply', body: Buffer.alloc(12), rcode: 0, source: 'upstream', reason: 'fake' };

async function run(name: string, type: packet.RecordType = 'A', opts: { edns?: boolean; internal?: boolean } = {}) {
  const policy = compiled(SPEC);
  const stage = createPolicyStage(new Router({ current: policy }, []));
  const ctx = queryContext(name, type, { ...opts, policy });
  let nextCalls = 0;
  const outcome = await stage.handle(ctx, async (c: QueryContext) => {
    nextCalls++;
    assert.equal(c, ctx);
    return UPSTREAM;
  });
  return { ctx, outcome, nextCalls, decoded: outcome === UPSTREAM ? undefined : decode(outcome.body) };
}

test('policy stage: an allowed name goes to next with the decision set', async () => {
  const r = await run('example.org');
  assert.equal(r.nextCalls, 1);
  assert.equal(r.outcome, UPSTREAM);
  assert.deepEqual(r.ctx.decision, { action: 'allow', rule: 'default', log: false });
});

test('policy stage: a log rule goes to next and asks for a log line', async () => {
  const r = await run('audit.test');
  assert.equal(r.nextCalls, 1);
  assert.deepEqual(r.ctx.decision, { action: 'log', rule: 'audit', log: true });
});

test('policy stage: nxdomain deny = NXDOMAIN + SOA of the glob base zone + EDE 15', async () => {
  const r = await run('www.Example.com');
  assert.equal(r.nextCalls, 0);
  assert.equal(r.outcome.source, 'policy');
  assert.equal(r.outcome.reason, 'nx');
  assert.equal(r.outcome.rcode, 3);
  assert.equal(r.outcome.ede?.code, 15);
  assert.match(r.outcome.ede!.text, /\bnx\b/);
  const d = r.decoded!;
  assert.equal(d.id, 4242);
  assert.equal(d.rcode, 'NXDOMAIN');
  assert.equal(d.questions![0]!.name, 'www.Example.com');
  assert.equal(d.answers!.length, 0);
  const soa = d.authorities[0]!;
  assert.equal(soa.type, 'SOA');
  assert.equal(soa.name, 'com');
  assert.equal(soa.ttl, 30);
  assert.equal(soa.data.minimum, 30);
  assert.match(soa.data.mname, /tenant-dns\.invalid$/);
  assert.deepEqual(r.ctx.decision, { action: 'deny', rule: 'nx', log: true });
});

test('policy stage: EDE 15 reaches an EDNS client through finishReply', async () => {
  const r = await run('www.example.com', 'A', { edns: true });
  const wire = finishReply(r.outcome.body, r.ctx.query, 1232, r.outcome.rcode, r.outcome.ede);
  const d = decode(wire);
  const opt = d.additionals.find((a) => a.type === 'OPT')!;
  assert.ok(opt, 'OPT present');
  const ede = opt.options!.find((o) => o.code === 15)!;
  assert.ok(ede, 'EDE option present');
  assert.equal(ede.data!.readUInt16BE(0), 15);
  assert.match(ede.data!.subarray(2).toString('utf8'), /nx/);
});

test('policy stage: refused deny answers REFUSED', async () => {
  const r = await run('refused.test');
  assert.equal(r.outcome.rcode, 5);
  assert.equal(r.decoded!.rcode, 'REFUSED');
  assert.equal(r.decoded!.questions!.length, 1);
  assert.equal(r.outcome.reason, 'ref');
});

test('policy stage: nodata deny answers NOERROR, no answers, SOA with the rule TTL', async () => {
  const r = await run('nodata.test', 'AAAA');
  assert.equal(r.decoded!.rcode, 'NOERROR');
  assert.equal(r.decoded!.answers!.length, 0);
  assert.equal(r.decoded!.authorities![0]!.type, 'SOA');
  assert.equal(r.decoded!.authorities![0]!.ttl, 7);
});

test('policy stage: sinkhole answers the addresses of the query type, NODATA for others', async () => {
  const a = await run('ads-1.sink.test', 'A');
  assert.deepEqual(a.decoded!.answers!.map((x) => [x.name, x.type, x.ttl, x.data]), [['ads-1.sink.test', 'A', 300, '0.0.0.0']]);
  const aaaa = await run('ads-1.sink.test', 'AAAA');
  assert.deepEqual(aaaa.decoded!.answers!.map((x) => [x.type, x.data]), [['AAAA', '::']]);
  const txt = await run('ads-1.sink.test', 'TXT');
  assert.equal(txt.decoded!.rcode, 'NOERROR');
  assert.equal(txt.decoded!.answers!.length, 0);
  assert.equal(txt.decoded!.authorities![0]!.name, 'sink.test');
});

test('policy stage: internal queries are not checked again', async () => {
  const r = await run('www.example.com', 'A', { internal: true });
  assert.equal(r.nextCalls, 1);
  assert.equal(r.ctx.decision, undefined);
});

test('policy stage: a policy swapped in the router acts on the next query', async () => {
  const holder = { current: compiled('{}') };
  const router = new Router(holder, []);
  const stage = createPolicyStage(router);
  const next = async () => UPSTREAM;
  const ctx = (name: string): QueryContext => {
    const base = queryContext(name);
    const route = router.route(base.query.qname);
    return { ...base, route, decision: route.evaluation.decision };
  };
  assert.equal(await stage.handle(ctx('x.com'), next), UPSTREAM);
  holder.current = compiled(SPEC);
  assert.equal((await stage.handle(ctx('x.com'), next)).source, 'policy');
});
