/**
 * `--cluster-spec-names-only`: names below `<ns>.svc.<domain>` that the
 * Kubernetes DNS specification cannot produce are answered NXDOMAIN by the
 * forward stage without asking the cluster DNS; off, everything is asked.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as packet from 'dns-packet';
import { impossibleServiceName } from '../../../sidecar/config/cluster.ts';
import { RCode } from '../../../sidecar/dns/constants.ts';
import { scanReply } from '../../../sidecar/dns/records.ts';
import { errorReply } from '../../../sidecar/dns/reply.ts';
import type { QueryContext } from '../../../sidecar/pipeline/stage.ts';
import { compilePolicy } from '../../../sidecar/policy/compile.ts';
import { classify } from '../../../sidecar/route/classify.ts';
import { forwardStage, type ResolvingGroup } from '../../../sidecar/upstream/stage.ts';
import { decode, queryContext } from '../policy/helpers.ts';

test('spec names: the shapes the Kubernetes DNS specification has below <ns>.svc.<domain>, and the ones it has not', () => {
  const possible = [
    'cluster.local',
    'svc.cluster.local',
    'team-a.svc.cluster.local',
    'web.team-a.svc.cluster.local',
    'web-0.web.team-a.svc.cluster.local',
    '_http._tcp.web.team-a.svc.cluster.local',
    'api.github.com.cluster.local', // not below svc: left alone
    '10-0-0-1.team-a.pod.cluster.local',
    'web.team-a.svc.example.org',
  ];
  const impossible = [
    'api.github.com.team-a.svc.cluster.local',
    'lkc-abc.eu-west-1.kafka.managed.service.team-a.svc.cluster.local',
    'lkc-abc.eu-west-1.kafka.managed.service.svc.cluster.local', // namespace "service", 4 labels below it
    '_http.tcp.web.team-a.svc.cluster.local',
    'a._tcp.web.team-a.svc.cluster.local',
  ];
  for (const n of possible) assert.equal(impossibleServiceName(n, 'cluster.local'), false, n);
  for (const n of impossible) assert.equal(impossibleServiceName(n, 'cluster.local'), true, n);
});

/** A cluster group that records the names it is asked and answers NXDOMAIN. */
function clusterGroup(asked: string[]): ResolvingGroup {
  const answer = (query: Buffer) => {
    const q = packet.decode(query).questions![0]!;
    asked.push(q.name);
    const reply = errorReply(query, RCode.NXDOMAIN, query.length - 11);
    return { reply, scan: scanReply(reply), upstream: 'udp://10.96.0.10:53' };
  };
  return {
    name: 'cluster',
    resolve: async (query) => answer(query),
    start: (query, _signal, to) => setImmediate(() => to.onReply(answer(query))),
  };
}

function clusterContext(name: string): QueryContext {
  const ctx = queryContext(name);
  return { ...ctx, route: classify(compilePolicy(), ['cluster.local', 'in-addr.arpa', 'ip6.arpa'], ctx.query.qname) };
}

test('spec names: on, an impossible cluster name is NXDOMAIN with the cluster SOA and never reaches the cluster DNS; off, it does', async () => {
  const asked: string[] = [];
  const groups = { get: (key: string) => (key === 'cluster' ? clusterGroup(asked) : undefined) };
  const on = forwardStage({ groups, specNamesOnly: 'cluster.local' });
  const out = await on.handle(clusterContext('Api.GitHub.com.team-a.svc.cluster.local'), () => assert.fail('last stage'));
  assert.equal(out.rcode, RCode.NXDOMAIN);
  assert.equal(out.source, 'local');
  assert.equal(out.reason, 'cluster-spec-names-only');
  const reply = decode(out.body);
  assert.deepEqual(reply.questions.map((q) => q.name), ['Api.GitHub.com.team-a.svc.cluster.local']);
  assert.deepEqual(reply.authorities.map((r) => [r.type, r.name]), [['SOA', 'cluster.local']]);
  await on.handle(clusterContext('web.team-a.svc.cluster.local'), () => assert.fail('last stage'));
  assert.deepEqual(asked, ['web.team-a.svc.cluster.local']);
  const off = forwardStage({ groups });
  await off.handle(clusterContext('api.github.com.team-a.svc.cluster.local'), () => assert.fail('last stage'));
  assert.deepEqual(asked, ['web.team-a.svc.cluster.local', 'api.github.com.team-a.svc.cluster.local']);
});
