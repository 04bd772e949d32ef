/**
 * Lease leader election on a manual clock (a lease's 15 s pass without
 * waiting): replicas against one Lease kept with the API server's
 * optimistic concurrency (a replace with a stale resourceVersion is 409, a
 * create of an existing Lease is 409). The same elector against the stand-in
 * API server: test/injector/controller.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { V1Lease } from '@kubernetes/client-node';
import { LeaderElector, type ElectionClock, type LeaseApi } from '../../injector/leader.ts';

class ApiError extends Error {
  readonly code: number;
  constructor(code: number) {
    super(`HTTP ${code}`);
    this.code = code;
  }
}

/** One Lease with resourceVersions; `down` makes every call of the replicas named fail (a partition). */
function leaseStore() {
  let stored: V1Lease | undefined;
  let rv = 0;
  const down = new Set<string>();
  const writes: string[] = [];
  /** While set, reads wait until this many are waiting, then all see the same state (replicas racing). */
  let gather: { n: number; waiting: (() => void)[] } | undefined;
  const api = (who: string): LeaseApi => {
    const check = () => {
      if (down.has(who)) throw new Error(`${who}: connection refused`);
    };
    return {
      readNamespacedLease: async () => {
        check();
        if (gather) {
          const g = gather;
          await new Promise<void>((r) => {
            g.waiting.push(r);
            if (g.waiting.length < g.n) return;
            gather = undefined;
            for (const w of g.waiting) w();
          });
        }
        if (!stored) throw new ApiError(404);
        return structuredClone(stored);
      },
      createNamespacedLease: async ({ body }) => {
        check();
        if (stored) throw new ApiError(409);
        stored = { ...structuredClone(body), metadata: { ...body.metadata, resourceVersion: String(++rv) } };
        writes.push(`${who} create ${body.spec?.holderIdentity}`);
        return structuredClone(stored);
      },
      replaceNamespacedLease: async ({ body }) => {
        check();
        if (!stored || body.metadata?.resourceVersion !== stored.metadata?.resourceVersion) throw new ApiError(409);
        stored = { ...JSON.parse(JSON.stringify(body)), metadata: { ...body.metadata, resourceVersion: String(++rv) } };
        writes.push(`${who} replace ${body.spec?.holderIdentity || '(released)'}`);
        return structuredClone(stored!);
      },
    } as LeaseApi;
  };
  const race = (n: number) => {
    gather = { n, waiting: [] };
  };
  return { api, down, writes, race, get lease() {
    return stored;
  } };
}

/** A manual clock: timers fire only when the test advances time, in order, with the promises they start settled. */
function manualClock() {
  let now = 1_700_000_000_000;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const settle = async () => {
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  };
  const clock: ElectionClock = {
    now: () => now,
    after(ms, fn) {
      const id = ++seq;
      timers.set(id, { at: now + ms, fn });
      return () => timers.delete(id);
    },
  };
  /** Moves time forward by `ms`, firing what falls due; `check` runs after each step. */
  const advance = async (ms: number, check: () => void = () => {}) => {
    const end = now + ms;
    await settle();
    for (;;) {
      const next = [...timers.entries()].sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (!next || next[1].at > end) break;
      timers.delete(next[0]);
      now = Math.max(now, next[1].at);
      next[1].fn();
      await settle();
      check();
    }
    now = end;
  };
  return { clock, advance, settle };
}

function replica(store: ReturnType<typeof leaseStore>, clock: ElectionClock, identity: string) {
  const events: string[] = [];
  const elector = new LeaderElector({
    api: store.api(identity),
    namespace: 'tenant-dns-system',
    name: 'tenant-dns-controller',
    identity,
    clock,
    onStartedLeading: () => events.push('started'),
    onStoppedLeading: () => events.push('stopped'),
  });
  return { elector, events };
}

/** Replica a leading (it started first) and b following, 10 s in. */
async function leaderAndFollower() {
  const store = leaseStore();
  const { clock, advance } = manualClock();
  const a = replica(store, clock, 'injector-a_1');
  const b = replica(store, clock, 'injector-b_2');
  a.elector.start();
  await advance(1);
  b.elector.start();
  await advance(10_000);
  assert.equal(a.elector.isLeader, true);
  return { store, clock, advance, a, b };
}

test('leader: of two replicas exactly one leads, and keeps leading while it renews', async () => {
  const store = leaseStore();
  const { clock, advance } = manualClock();
  const a = replica(store, clock, 'injector-a_1');
  const b = replica(store, clock, 'injector-b_2');
  a.elector.start();
  b.elector.start();
  const oneLeader = () => assert.equal([a, b].filter((r) => r.elector.isLeader).length, 1, 'exactly one leader');
  await advance(60_000, oneLeader);
  assert.equal(a.elector.isLeader, true, 'the first to try took the free lease');
  assert.deepEqual(a.events, ['started']);
  assert.deepEqual(b.events, []);
  assert.equal(store.lease?.spec?.holderIdentity, 'injector-a_1');
  assert.equal(store.lease?.spec?.leaseDurationSeconds, 15);
  // Renewed every 5 s: a create and 12 renewals in 60 s, none by b.
  assert.equal(store.writes.filter((w) => w.startsWith('injector-a_1')).length, 13);
  assert.equal(store.writes.filter((w) => w.startsWith('injector-b_2')).length, 0);
  await a.elector.stop();
  await b.elector.stop();
});

test('leader: a stopping leader releases the lease and the other replica takes over at its next retry, not after the lease duration', async () => {
  const { store, clock, advance, a, b } = await leaderAndFollower();
  await a.elector.stop();
  assert.equal(a.elector.isLeader, false);
  assert.deepEqual(a.events, ['started', 'stopped']);
  assert.equal(store.lease?.spec?.holderIdentity, '', 'released');
  await advance(2_000);
  assert.equal(b.elector.isLeader, true, 'taken within one retry interval (2 s)');
  assert.equal(store.lease?.spec?.holderIdentity, 'injector-b_2');
  assert.equal(store.lease?.spec?.leaseTransitions, 1);
  await b.elector.stop();
});

test('leader: a leader cut off from the API stops leading before its lease expires; the other takes over after the lease duration', async () => {
  const { store, clock, advance, a, b } = await leaderAndFollower();
  store.down.add('injector-a_1');
  const cutAt = clock.now();
  let aStoppedAt: number | undefined;
  let bStartedAt: number | undefined;
  await advance(30_000, () => {
    assert.ok(!(a.elector.isLeader && b.elector.isLeader), 'never two leaders');
    if (!a.elector.isLeader) aStoppedAt ??= clock.now();
    if (b.elector.isLeader) bStartedAt ??= clock.now();
  });
  assert.ok(aStoppedAt !== undefined && aStoppedAt - cutAt <= 10_000, `a stopped within its renew deadline (${aStoppedAt! - cutAt} ms)`);
  assert.ok(bStartedAt !== undefined && bStartedAt > aStoppedAt!, 'b took over only after a stopped');
  assert.ok(bStartedAt! - cutAt >= 15_000 - 5_000, 'b waited for the lease to expire (15 s from its last sight of a renewal)');
  assert.deepEqual(a.events, ['started', 'stopped']);
  assert.deepEqual(b.events, ['started']);
  // a comes back: it sees b's lease and does not lead.
  store.down.delete('injector-a_1');
  await advance(10_000, () => assert.equal(a.elector.isLeader, false));
  await a.elector.stop();
  await b.elector.stop();
});

test('leader: when two replicas take a free lease at once, the API server lets one win (409 for the other)', async () => {
  const store = leaseStore();
  const { clock, advance } = manualClock();
  const replicas = ['a', 'b', 'c'].map((n) => replica(store, clock, `injector-${n}`));
  // All three read "no lease" before any creates it.
  store.race(3);
  for (const r of replicas) r.elector.start();
  await advance(0);
  assert.equal(replicas.filter((r) => r.elector.isLeader).length, 1);
  assert.deepEqual(store.writes, [`${store.lease?.spec?.holderIdentity} create ${store.lease?.spec?.holderIdentity}`], 'one create succeeded, the others conflicted');
  // Again on a released lease: all three read it free, one replace wins.
  const leader = replicas.find((r) => r.elector.isLeader)!;
  await leader.elector.stop();
  store.race(2);
  store.writes.length = 0;
  await advance(2_000);
  assert.equal(replicas.filter((r) => r.elector.isLeader).length, 1);
  assert.equal(store.writes.length, 1, `one replace won: ${store.writes.join(', ')}`);
  for (const r of replicas) await r.elector.stop();
});
