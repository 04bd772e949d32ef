/**
 * Upstream groups: failover order, SERVFAIL handling, marking down and probe
 * recovery, TC → TCP fallback, the total deadline, the race.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import * as packet from 'dns-packet';
import { SidecarError } from '../../../sidecar/errors.ts';
import { fromUrl } from '../../../sidecar/upstream/from-url.ts';
import { createGroup } from '../../../sidecar/upstream/group.ts';
import type { GroupOptions, UpstreamGroup } from '../../../sidecar/upstream/group.ts';
import { encodeQuery } from '../../helpers/dns-client.ts';
import { defaultAnswer, startDnsServer } from '../../helpers/dns-server.ts';
import type { Handler, TestDnsServer } from '../../helpers/dns-server.ts';
import { Gates, referenceTimer } from '../../helpers/events.ts';

async function servers(t: TestContext, ...handlers: Handler[]): Promise<TestDnsServer[]> {
  const out = await Promise.all(handlers.map((handler) => startDnsServer({ handler })));
  t.after(() => Promise.all(out.map((s) => s.close())));
  return out;
}

function group(t: TestContext, urls: string[], options: GroupOptions = {}): UpstreamGroup {
  const g = createGroup('test', urls.map((u) => fromUrl(u)), options);
  t.after(() => g.close());
  return g;
}

const answer: Handler = (q) => defaultAnswer(q);
const servfail: Handler = (q) => {
  const r = defaultAnswer(q);
  return { ...r, flags: (r.flags ?? 0) | 2, answers: [] };
};

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const until = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > until) assert.fail(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('upstream group', () => {
  it('group: fails over in order and reports each attempt', async (t) => {
    const [a, b, c] = await servers(t, () => 'drop', answer, answer);
    const attempts: [string, number | null, string | null][] = [];
    const g = group(t, [a!.url('udp'), b!.url('udp'), c!.url('udp')], {
      attemptTimeoutMs: 150,
      observer: { onAttempt: (u, rcode, code) => attempts.push([u, rcode, code]) },
    });
    const r = await g.resolve(encodeQuery({ name: 'www.example.test', type: 'A', id: 5 }), AbortSignal.timeout(2000));
    assert.equal(r.upstream, b!.url('udp'));
    assert.equal(packet.decode(r.reply).id, 5);
    assert.deepEqual(attempts, [
      [a!.url('udp'), null, 'UPSTREAM_TIMEOUT'],
      [b!.url('udp'), 0, null],
    ]);
    assert.equal(c!.counts.total, 0);
  });

  it('group: SERVFAIL moves on; when all answer SERVFAIL the last reply is returned', async (t) => {
    const [a, b] = await servers(t, servfail, answer);
    const g = group(t, [a!.url('udp'), b!.url('udp')]);
    const r = await g.resolve(encodeQuery({ name: 'www.example.test', type: 'A' }), AbortSignal.timeout(2000));
    assert.equal(r.upstream, b!.url('udp'));
    b!.setHandler(servfail);
    const r2 = await g.resolve(encodeQuery({ name: 'www.example.test', type: 'A' }), AbortSignal.timeout(2000));
    assert.equal(r2.upstream, b!.url('udp'));
    assert.equal(r2.reply[3]! & 0x0f, 2, 'SERVFAIL');
    assert.ok(g.healthy(), 'SERVFAIL does not mark upstreams down');
  });

  it('group: marks a failing upstream down, skips it, probes it back', async (t) => {
    const [a, b] = await servers(t, answer, answer);
    const health: [string, boolean][] = [];
    const attempts: string[] = [];
    const g = group(t, [a!.url('tcp'), b!.url('tcp')], {
      failuresBeforeDown: 2,
      probeIntervalMs: 100,
      attemptTimeoutMs: 300,
      observer: { onHealth: (u, h) => health.push([u, h]), onAttempt: (u) => attempts.push(u) },
    });
    await a!.stop();
    for (let i = 0; i < 2; i++) {
      const r = await g.resolve(encodeQuery({ name: `q${i}.example.test`, type: 'A' }), AbortSignal.timeout(2000));
      assert.equal(r.upstream, b!.url('tcp'));
    }
    assert.deepEqual(g.members(), [
      { address: a!.url('tcp'), healthy: false },
      { address: b!.url('tcp'), healthy: true },
    ]);
    assert.ok(g.healthy());
    attempts.length = 0;
    const r = await g.resolve(encodeQuery({ name: 'skip.example.test', type: 'A' }), AbortSignal.timeout(2000));
    assert.equal(r.upstream, b!.url('tcp'));
    assert.deepEqual(attempts, [b!.url('tcp')], 'a down upstream is skipped, not tried');
    await a!.restart();
    await waitFor(() => g.members()[0]!.healthy, 2000);
    assert.deepEqual(health, [
      [a!.url('tcp'), false],
      [a!.url('tcp'), true],
    ]);
    const back = await g.resolve(encodeQuery({ name: 'back.example.test', type: 'A' }), AbortSignal.timeout(2000));
    assert.equal(back.upstream, a!.url('tcp'));
  });

  it('group: when every upstream is down they are still tried in order', async (t) => {
    const [a, b] = await servers(t, answer, answer);
    const g = group(t, [a!.url('tcp'), b!.url('tcp')], { failuresBeforeDown: 1, probeIntervalMs: 60_000 });
    await a!.stop();
    await b!.stop();
    await assert.rejects(g.resolve(encodeQuery({ name: 'x.example.test', type: 'A' }), AbortSignal.timeout(2000)), (err: unknown) => {
      assert.ok(err instanceof SidecarError);
      assert.equal(err.code, 'UPSTREAM_GROUP_FAILED');
      assert.equal((err.cause as SidecarError).code, 'UPSTREAM_CONNECT');
      return true;
    });
    assert.equal(g.healthy(), false);
    await b!.restart();
    const r = await g.resolve(encodeQuery({ name: 'y.example.test', type: 'A' }), AbortSignal.timeout(2000));
    assert.equal(r.upstream, b!.url('tcp'));
  });

  it('group: a UDP reply with TC is repeated over TCP, giving the > 4 KB answer', async (t) => {
    const [a] = await servers(t, answer);
    const attempts: string[] = [];
    const g = group(t, [a!.url('udp')], { observer: { onAttempt: (u) => attempts.push(u) } });
    const r = await g.resolve(encodeQuery({ name: 'big.example.test', type: 'TXT', id: 31 }), AbortSignal.timeout(2000));
    assert.equal(r.upstream, a!.url('tcp'));
    assert.ok(r.reply.length > 4096, `reply of ${r.reply.length} bytes`);
    const p = packet.decode(r.reply);
    assert.equal(p.id, 31);
    assert.equal(p.answers?.length, 20);
    assert.deepEqual(attempts, [a!.url('udp'), a!.url('tcp')]);
    assert.equal(a!.counts.udp, 1);
    assert.equal(a!.counts.tcp, 1);
  });

  it('group: the total deadline is respected', async (t) => {
    const [a, b, c] = await servers(t, () => 'drop', () => 'drop', () => 'drop');
    const attempts: [string, string | null][] = [];
    const g = group(t, [a!.url('udp'), b!.url('tcp'), c!.url('udp')], {
      attemptTimeoutMs: 250,
      deadlineMs: 600,
      observer: { onAttempt: (u, _rcode, code) => attempts.push([u, code]) },
    });
    // Reference timers started just before the query: timers fire in the order they expire, so the group's
    // failure comes after the first (not before the deadline) and before the second (the last upstream got
    // the 100 ms left, not an attempt of its own) however slowly the machine runs.
    const early = referenceTimer(590);
    const late = referenceTimer(700);
    t.after(() => late.cancel());
    await assert.rejects(g.resolve(encodeQuery({ name: 'x.example.test', type: 'A' }), AbortSignal.timeout(5000)), (err: unknown) => {
      assert.ok(err instanceof SidecarError);
      assert.equal(err.code, 'UPSTREAM_GROUP_FAILED');
      assert.equal((err.cause as SidecarError).code, 'UPSTREAM_TIMEOUT');
      return true;
    });
    assert.ok(early.fired && !late.fired, `failed ${early.fired ? 'after' : 'before'} the deadline`);
    assert.deepEqual(attempts, [
      [a!.url('udp'), 'UPSTREAM_TIMEOUT'],
      [b!.url('tcp'), 'UPSTREAM_TIMEOUT'],
      [c!.url('udp'), 'UPSTREAM_TIMEOUT'],
    ]);
    await waitFor(() => c!.counts.total === 1, 2000); // its query reached it ('the last upstream gets what is left of the deadline')
  });

  it("group: the caller's abort rejects with UPSTREAM_ABORTED and marks nobody down", async (t) => {
    const atServer = Promise.withResolvers<void>();
    const [a] = await servers(t, () => {
      atServer.resolve();
      return 'drop';
    });
    const g = group(t, [a!.url('udp')], { failuresBeforeDown: 1 });
    await assert.rejects(g.resolve(encodeQuery({ name: 'x.example.test', type: 'A' }), AbortSignal.abort()), { code: 'UPSTREAM_ABORTED' });
    const ac = new AbortController();
    const aborted = assert.rejects(g.resolve(encodeQuery({ name: 'x.example.test', type: 'A' }), ac.signal), { code: 'UPSTREAM_ABORTED' });
    await atServer.promise; // aborted while the upstream has the query
    ac.abort();
    await aborted;
    assert.ok(g.healthy());
  });

  it("group: queries sharing one caller's signal are all aborted by it, after others sharing it finished", async (t) => {
    // The deadlines of queries under one caller's signal (the sidecar's shutdown signal) are a list the signal
    // walks when it aborts; queries that finish leave it from the front, the middle and the back, in any order.
    const gates = new Gates();
    t.after(() => gates.openAll());
    const [a] = await servers(t, async (q) => {
      const name = q.questions?.[0]?.name ?? '';
      if (name.startsWith('held')) return 'drop'; // until the caller gives up
      await gates.pass(name);
      return defaultAnswer(q);
    });
    const g = group(t, [a!.url('udp')], { failuresBeforeDown: 1, attemptTimeoutMs: 3000 });
    const shutdown = new AbortController();
    const ask = (name: string) => g.resolve(encodeQuery({ name, type: 'A' }), shutdown.signal);
    let seed = 7;
    const rand = (n: number) => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n;
    const held: Promise<unknown>[] = [];
    const gated: { name: string; answer: Promise<unknown> }[] = [];
    for (let i = 0; i < 40; i++) {
      const op = rand(3);
      if (op === 0) held.push(ask(`held${i}.example.test`));
      else if (op === 1 || gated.length === 0) {
        const name = `q${i}.example.test`;
        gated.push({ name, answer: ask(name) });
        await gates.arrived(name);
      } else {
        const [done] = gated.splice(rand(gated.length), 1);
        gates.open(done!.name);
        await done!.answer;
      }
    }
    shutdown.abort();
    for (const h of held) await assert.rejects(h, { code: 'UPSTREAM_ABORTED' });
    for (const q of gated) await assert.rejects(q.answer, { code: 'UPSTREAM_ABORTED' });
    assert.ok(held.length > 5 && gated.length > 0, 'the walk had queries of both kinds to abort');
    assert.ok(g.healthy());
  });

  it('group: a race of the first two returns the fastest good reply', async (t) => {
    const gates = new Gates();
    t.after(() => gates.openAll());
    const slow: Handler = async (q) => {
      await gates.pass('slow');
      return defaultAnswer(q);
    };
    const [a, b] = await servers(t, slow, answer);
    const g = group(t, [a!.url('udp'), b!.url('udp')], { race: 2, attemptTimeoutMs: 1500 });
    const r = await g.resolve(encodeQuery({ name: 'x.example.test', type: 'A' }), AbortSignal.timeout(3000));
    assert.equal(r.upstream, b!.url('udp'));
    // The slow upstream had the query and holds its answer until the test ends: the race did not wait for it.
    await gates.arrived('slow');
    assert.ok(g.members().every((m) => m.healthy), 'the loser of a race is not counted as failing');
  });

  it('group: rejects a deadline of 5 s or more and an empty member list', () => {
    assert.throws(() => createGroup('x', [fromUrl('udp://127.0.0.1:53')], { deadlineMs: 5000 }), { code: 'CONFIG_INVALID' });
    assert.throws(() => createGroup('x', []), { code: 'CONFIG_INVALID' });
  });
});
