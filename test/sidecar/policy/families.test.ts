/**
 * The families stage (`spec.ipFamilies`) in a pipeline of the real stages:
 * the family a policy leaves out is answered in the pod, in agreement with
 * the other family's answer, and never forwarded.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { searchConfig } from '../../../sidecar/autopath/search.ts';
import { ConfigInvalidError } from '../../../sidecar/config/load.ts';
import { pipelineBed, type Table } from '../../helpers/pipeline-bed.ts';
import { policy } from './helpers.ts';

const TABLE: Table = {
  'web.team-a.svc.cluster.local': { A: '198.51.100.80' },
  'dual.example.org': { A: '192.0.2.1', AAAA: '2001:db8::1' },
  'v6.example.org': { AAAA: '2001:db8::6' },
};

const V4 = 'ipFamilies: [IPv4]\n';

test('families: [IPv4] answers AAAA of a name that exists NODATA with an SOA, asking upstream only for A', async () => {
  const b = pipelineBed({ table: TABLE, policy: V4 });
  const { reply, outcome } = await b.ask('Dual.Example.org', 'AAAA');
  assert.equal(reply.rcode, 'NOERROR');
  assert.deepEqual(reply.answers, []);
  assert.deepEqual(reply.authorities.map((r) => [r.type, r.name]), [['SOA', '.']]);
  assert.deepEqual(reply.questions, [{ name: 'Dual.Example.org', type: 'AAAA', class: 'IN' }]);
  assert.equal(outcome.reason, 'ip-families');
  assert.deepEqual(b.asked, ['dual.example.org A']);
  // A itself is forwarded as ever; here the AAAA's look at it left it in the cache.
  const a = await b.ask('dual.example.org', 'A');
  assert.deepEqual(a.reply.answers.map((r) => r.data), ['192.0.2.1']);
  assert.equal(b.asked.length, 1);
});

test('families: [IPv4] answers AAAA of a name that does not exist NXDOMAIN (its A\'s), never NODATA', async () => {
  const b = pipelineBed({ table: TABLE, policy: V4 });
  const { reply } = await b.ask('nope.example.org', 'AAAA');
  assert.equal(reply.rcode, 'NXDOMAIN');
  assert.deepEqual(reply.questions, [{ name: 'nope.example.org', type: 'AAAA', class: 'IN' }]);
  assert.deepEqual(reply.authorities.map((r) => r.type), ['SOA']);
  assert.deepEqual(b.asked, ['nope.example.org A']);
});

test('families: the cluster zone\'s SOA goes with a cluster name; an upstream failure still answers NODATA', async () => {
  const b = pipelineBed({ table: TABLE, policy: V4, fail: (n) => n === 'down.example.org' });
  const svc = await b.ask('web.team-a.svc.cluster.local', 'AAAA');
  assert.deepEqual(svc.reply.authorities.map((r) => r.name), ['cluster.local']);
  const down = await b.ask('down.example.org', 'AAAA');
  assert.equal(down.reply.rcode, 'NOERROR');
});

test('families: [IPv6] answers A likewise; no ipFamilies, or both, forwards both', async () => {
  const v6 = pipelineBed({ table: TABLE, policy: 'ipFamilies: [IPv6]\n' });
  assert.equal((await v6.ask('v6.example.org', 'A')).reply.rcode, 'NOERROR');
  assert.deepEqual((await v6.ask('v6.example.org', 'AAAA')).reply.answers.map((r) => r.data), ['2001:db8::6']);
  assert.deepEqual(v6.asked, ['v6.example.org AAAA']);
  for (const spec of ['rules: []\n', 'ipFamilies: [IPv4, IPv6]\n']) {
    const both = pipelineBed({ table: TABLE, policy: spec });
    await both.ask('dual.example.org', 'AAAA');
    assert.deepEqual(both.asked, ['dual.example.org AAAA'], spec);
  }
});

test('families: the platform\'s ipFamilies wins over the tenant\'s', async () => {
  const b = pipelineBed({ table: TABLE, policy: V4, platform: 'ipFamilies: [IPv4, IPv6]\n' });
  assert.deepEqual((await b.ask('dual.example.org', 'AAAA')).reply.answers.map((r) => r.data), ['2001:db8::1']);
  const p = pipelineBed({ table: TABLE, policy: 'ipFamilies: [IPv4, IPv6]\n', platform: V4 });
  await p.ask('dual.example.org', 'AAAA');
  assert.deepEqual(p.asked, ['dual.example.org A']);
});

test('families: policy comes first (a denied AAAA gets the deny), split zones follow ipFamilies', async () => {
  const b = pipelineBed({
    table: TABLE,
    policy: `${V4}rules:\n  - { name: no-dual, action: deny, names: [dual.example.org] }\nsplitZones:\n  - { name: db, names: [db.internal.example], addresses: [10.0.0.1, "fd00::1"] }\n`,
  });
  const denied = await b.ask('dual.example.org', 'AAAA');
  assert.equal(denied.reply.rcode, 'NXDOMAIN');
  assert.equal(denied.outcome.source, 'policy');
  const split = await b.ask('db.internal.example', 'AAAA');
  assert.equal(split.reply.rcode, 'NOERROR');
  assert.deepEqual(split.reply.answers, []);
  assert.deepEqual(b.asked, []);
});

test('families with autopath: an IPv4-only walk ends where the A walk does (CNAME + SOA for AAAA)', async () => {
  const b = pipelineBed({ table: TABLE, policy: V4, search: searchConfig(['team-a.svc.cluster.local', 'svc.cluster.local', 'cluster.local'], 5)! });
  const { reply } = await b.ask('dual.example.org.team-a.svc.cluster.local', 'AAAA');
  assert.deepEqual(reply.answers.map((r) => [r.type, r.data]), [['CNAME', 'dual.example.org']]);
  assert.deepEqual(reply.authorities.map((r) => r.type), ['SOA']);
  assert.ok(b.asked.every((q) => q.endsWith(' A')), b.asked.join(', '));
});

test('families: the schema takes IPv4 and IPv6, once each', () => {
  assert.deepEqual(policy(V4).spec.ipFamilies, ['IPv4']);
  for (const bad of ['ipFamilies: [IPv5]\n', 'ipFamilies: []\n', 'ipFamilies: [IPv4, IPv4]\n']) {
    assert.throws(() => policy(bad), ConfigInvalidError, bad);
  }
});
