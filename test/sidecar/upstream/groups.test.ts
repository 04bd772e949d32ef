/**
 * The owner of the upstream groups, alone: default and cluster groups, the
 * forward-zone groups following policy reloads, the retirement of replaced
 * groups once their queries are answered, unusable forward zones.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as packet from 'dns-packet';
import { ErrorCodes } from '../../../sidecar/errors.ts';
import { silentLogger } from '../../../sidecar/log.ts';
import type { CompiledPolicy } from '../../../sidecar/policy/compile.ts';
import { fromUrl } from '../../../sidecar/upstream/from-url.ts';
import { createGroup, type UpstreamGroup } from '../../../sidecar/upstream/group.ts';
import { UpstreamGroups, type GroupFactory, type PolicySource } from '../../../sidecar/upstream/groups.ts';
import { encodeQuery } from '../../helpers/dns-client.ts';
import { defaultAnswer, startDnsServer, type HandlerResult } from '../../helpers/dns-server.ts';
import { compiled } from '../policy/helpers.ts';

/** A factory of real groups that records each group it made and whether it was closed. */
function recordingFactory() {
  const made: { name: string; urls: readonly string[]; closed: boolean; group: UpstreamGroup }[] = [];
  const create: GroupFactory = (name, urls) => {
    const group = createGroup(name, urls.map((u) => fromUrl(u)), { attemptTimeoutMs: 2000, deadlineMs: 4000 });
    const entry = { name, urls, closed: false, group };
    made.push(entry);
    return {
      ...group,
      close: async () => {
        entry.closed = true;
        await group.close();
      },
    };
  };
  return { create, made };
}

/** A policy source whose reloads the test triggers. */
function policySource(first: CompiledPolicy) {
  const listeners = new Set<(r: 'success' | 'failure') => void>();
  const source: PolicySource & { reload(next: CompiledPolicy): void } = {
    current: first,
    onReload(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    reload(next) {
      (this as { current: CompiledPolicy }).current = next;
      for (const cb of listeners) cb('success');
    },
  };
  return source;
}

const corp = (url: string) => `forwardZones:\n  - {name: corp, zones: [corp.test], upstreams: ["${url}"]}`;

test('groups: a reload that changes a forward zone lets the query in flight finish on the old group, sends new ones to the new group, then closes the old one', async (t) => {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const oldServer = await startDnsServer({ handler: async (q): Promise<HandlerResult> => (await held, { ...defaultAnswer(q), answers: [{ name: q.questions![0]!.name, type: 'A', class: 'IN', ttl: 60, data: '198.51.100.1' }] }) });
  const newServer = await startDnsServer({ handler: (q) => ({ ...defaultAnswer(q), answers: [{ name: q.questions![0]!.name, type: 'A', class: 'IN', ttl: 60, data: '198.51.100.2' }] }) });
  t.after(() => Promise.all([oldServer.close(), newServer.close()]));
  const { create, made } = recordingFactory();
  const groups = new UpstreamGroups({ create, defaultUrls: [newServer.url('udp')], log: silentLogger });
  t.after(() => groups.close());
  const policy = policySource(compiled(corp(oldServer.url('tcp'))));
  groups.follow(policy);

  const inFlight = groups.get('corp')!.resolve(encodeQuery({ name: 'git.corp.test', type: 'A' }), AbortSignal.timeout(5000));
  // Wait until the old server has the query: from then on it is in flight on the old group.
  while (oldServer.counts.total === 0) await new Promise((r) => setImmediate(r));

  policy.reload(compiled(corp(newServer.url('udp'))));
  assert.equal(groups.retiring, 1, 'the old group is retiring, not closed, while its query waits');
  assert.equal(made.find((m) => m.urls[0] === oldServer.url('tcp'))!.closed, false);
  const fresh = await groups.get('corp')!.resolve(encodeQuery({ name: 'wiki.corp.test', type: 'A' }), AbortSignal.timeout(5000));
  assert.deepEqual(packet.decode(fresh.reply).answers!.map((a) => (a as { data: unknown }).data), ['198.51.100.2'], 'a new query goes to the new group');

  release();
  const old = await inFlight;
  assert.deepEqual(packet.decode(old.reply).answers!.map((a) => (a as { data: unknown }).data), ['198.51.100.1'], 'the query in flight is answered by the old group');
  while (groups.retiring > 0) await new Promise((r) => setImmediate(r));
  assert.equal(made.find((m) => m.urls[0] === oldServer.url('tcp'))!.closed, true, 'the old group (and its TCP connection) is closed');
  assert.deepEqual([...groups.all().keys()].sort(), ['corp', 'default']);
});

test('groups: an unchanged forward zone keeps its group; a removed one is closed at once when idle', async (t) => {
  const { create, made } = recordingFactory();
  const groups = new UpstreamGroups({ create, defaultUrls: ['udp://127.0.0.1:1'], clusterDns: '127.0.0.1:2', log: silentLogger });
  t.after(() => groups.close());
  const policy = policySource(compiled(corp('udp://127.0.0.1:3')));
  groups.follow(policy);
  const first = groups.get('corp');
  policy.reload(compiled(`${corp('udp://127.0.0.1:3')}\nrules:\n  - {name: r, action: deny, names: [x.test]}`));
  assert.equal(groups.get('corp'), first, 'same upstreams: same group');
  policy.reload(compiled('{}'));
  assert.equal(groups.get('corp'), undefined);
  assert.equal(made.find((m) => m.name === 'corp')!.closed, true);
  assert.deepEqual([...groups.all().keys()].sort(), ['cluster', 'default']);
  assert.deepEqual(made.find((m) => m.name === 'cluster')!.urls, ['tcp://127.0.0.1:2', 'udp://127.0.0.1:2']);
});

test('groups: a forward zone whose upstreams cannot be used answers SERVFAIL naming the zone, never the default group', async (t) => {
  const lines: string[] = [];
  const { create, made } = recordingFactory();
  const groups = new UpstreamGroups({ create, defaultUrls: ['udp://127.0.0.1:1'], log: (_level, msg, fields) => lines.push(`${msg} ${JSON.stringify(fields)}`) });
  t.after(() => groups.close());
  groups.follow(policySource(compiled(corp('tls://dns.corp.test:853'))));
  const g = groups.get('corp')!;
  await assert.rejects(g.resolve(encodeQuery({ name: 'git.corp.test', type: 'A' }), AbortSignal.timeout(1000)), (err: { code: string; ede: { text: string } }) => {
    assert.equal(err.code, ErrorCodes.FORWARD_ZONE_UNUSABLE);
    assert.match(err.ede.text, /forward zone corp is unusable/);
    return true;
  });
  assert.equal(groups.all().get('corp')!.healthy(), false, 'readiness sees it');
  assert.equal(made.filter((m) => m.name === 'corp').length, 0);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /forward zone upstreams are unusable.*"zone":"corp"/);
});
