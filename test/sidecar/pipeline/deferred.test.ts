/**
 * The query path's pending answer (sidecar/pipeline/deferred.ts): continuations
 * run in the call that settles it, outcomes and errors pass through a chain as
 * through a Promise chain, Promises and Deferreds returned by a continuation
 * are followed, and `await`, Promise.resolve and Promise.race take it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { after, Deferred } from '../../../sidecar/pipeline/deferred.ts';

test('deferred: a continuation runs inside resolve(), before resolve() returns, and the chain carries its result', () => {
  const d = new Deferred<number>();
  const seen: string[] = [];
  const chained = d.then((v) => {
    seen.push(`first ${v}`);
    return v * 2;
  });
  chained.then((v) => seen.push(`second ${v}`));
  assert.deepEqual(seen, []);
  d.resolve(21);
  assert.deepEqual(seen, ['first 21', 'second 42'], 'both continuations ran synchronously, in order');
  assert.equal(chained.settled, true);
});

test('deferred: then() on a settled deferred runs the continuation at once', () => {
  const d = Deferred.from('ready');
  let got: string | undefined;
  d.then((v) => (got = v));
  assert.equal(got, 'ready');
});

test('deferred: it settles once; later resolve() and reject() change nothing', async () => {
  const d = new Deferred<string>();
  d.resolve('first');
  d.resolve('second');
  d.reject(new Error('late'));
  assert.equal(await d, 'first');
});

test('deferred: a rejection passes through continuations without a rejection handler to the first that has one', () => {
  const d = new Deferred<number>();
  const calls: string[] = [];
  const end = d
    .then(() => calls.push('skipped'))
    .thenWith('ctx', (arg) => calls.push(`skipped ${arg}`))
    .then(undefined, (err) => `handled ${(err as Error).message}`);
  let result: unknown;
  end.then((v) => (result = v));
  d.reject(new Error('upstream failed'));
  assert.deepEqual(calls, []);
  assert.equal(result, 'handled upstream failed');
});

test('deferred: a continuation that throws rejects the deferred then() returned', () => {
  const d = new Deferred<number>();
  let reason: unknown;
  d.then(() => {
    throw new Error('bug in a stage');
  }).catch((err) => (reason = err));
  d.resolve(1);
  assert.equal((reason as Error).message, 'bug in a stage');
});

test('deferred: a continuation may return a Deferred or a Promise, which the chain follows', async () => {
  const d = new Deferred<number>();
  const inner = new Deferred<string>();
  const viaDeferred = d.then(() => inner);
  const viaPromise = d.then(async (v) => `promised ${v}`);
  d.resolve(7);
  assert.equal(viaDeferred.settled, false, 'waits for the deferred it returned');
  inner.resolve('inner value');
  assert.equal(await viaDeferred, 'inner value');
  assert.equal(await viaPromise, 'promised 7');
  const rejected = Deferred.from(Promise.reject(new Error('no')));
  await assert.rejects(Promise.resolve(rejected), /no/);
});

test('deferred: thenWith() hands its argument to either handler', () => {
  const ok = new Deferred<number>();
  const bad = new Deferred<number>();
  const out: unknown[] = [];
  ok.thenWith({ id: 1 }, (arg, v) => out.push([arg.id, v]));
  bad.thenWith(undefined, undefined, (arg, err) => out.push([arg, (err as Error).message]));
  ok.resolve(5);
  bad.reject(new Error('refused'));
  assert.deepEqual(out, [
    [1, 5],
    [undefined, 'refused'],
  ]);
});

test('deferred: after() continues a Deferred without a microtask and a Promise through its then()', async () => {
  const d = new Deferred<number>();
  const order: string[] = [];
  after(d, 'arg', (arg, v) => order.push(`${arg} ${v}`));
  d.resolve(1);
  order.push('after resolve');
  const p = after(Promise.resolve(2), 'arg', (arg, v) => `${arg} ${v}`);
  assert.ok(p instanceof Promise);
  assert.equal(await p, 'arg 2');
  assert.deepEqual(order, ['arg 1', 'after resolve']);
});

test('deferred: await, Promise.resolve() and Promise.race() take it', async () => {
  const d = new Deferred<string>();
  setTimeout(() => d.resolve('late'), 5);
  const never = new Promise<string>(() => {});
  assert.equal(await Promise.race([d, never]), 'late');
  assert.equal(await Promise.resolve(d), 'late');
  const failing = new Deferred<string>();
  setTimeout(() => failing.reject(new Error('timeout')), 1);
  await assert.rejects(async () => await failing, /timeout/);
});

test('deferred: a deferred that follows itself is rejected, not left pending forever', () => {
  const d = new Deferred<unknown>();
  let reason: unknown;
  const loop: Deferred<unknown> = d.then((): Deferred<unknown> => loop);
  loop.catch((err: unknown) => (reason = err));
  d.resolve(undefined);
  assert.match((reason as Error).message, /cannot follow itself/);
});
