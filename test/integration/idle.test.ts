/**
 * An idle sidecar stays asleep: a platform runs one per pod, so timers that
 * fire while no query comes cost CPU on every node all day. The sidecar runs
 * as the README starts it, with its metrics on; the test counts how often
 * its main thread is woken (voluntary context switches, /proc) while idle,
 * checks the one heap compaction after start-up (sidecar/runtime/heap.ts), and that
 * V8's helper threads run at a lower priority than the main one (sidecar/runtime/threads.ts).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { getPriority } from 'node:os';
import { runInNewContext } from 'node:vm';
import { compactHeap } from '../../sidecar/runtime/heap.ts';
import { decodeReply, encodeQuery, exchangeUdpRaw } from '../helpers/dns-client.ts';
import { spawnServing, waitFor } from '../helpers/sidecar.ts';

/** Voluntary context switches of a process's main thread so far. */
function wakeups(pid: number): number {
  const m = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, 'voluntary_ctxt_switches in /proc/PID/status');
  return Number(m[1]);
}

test('idle: the main thread wakes at most a few times a second when no query comes', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  // A UDP upstream on a closed loopback port: nothing is sent while no query comes.
  const sc = await spawnServing(['sidecar', '--upstream', 'udp://127.0.0.1:9', '--metrics', '127.0.0.1:0', '--admin', '127.0.0.1:0']);
  t.after(() => sc.kill());
  const pid = sc.child.pid!;
  // Start-up work done: the heap compaction is the last of it, after the helper threads are reniced.
  const logged = (msg: string) => sc.stderr().includes(`"msg":"${msg}"`);
  await waitFor('the start-up work to finish', () => logged('helper threads yield to the main thread') && logged('start-up heap compacted'), 5000, () => sc.stderr());
  const before = wakeups(pid);
  const seconds = 3;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const perSecond = (wakeups(pid) - before) / seconds;
  // prom-client's default event-loop monitor alone woke it ~100 times a second.
  t.diagnostic(`${perSecond.toFixed(1)} wakeups a second`);
  assert.ok(perSecond <= 10, `main thread woke ${perSecond.toFixed(1)} times a second while idle`);
});

test('idle: once serving, the sidecar compacts its start-up heap once, and goes on answering', async (t) => {
  const sc = await spawnServing(['sidecar', '--upstream', 'udp://127.0.0.1:9', '--metrics', '127.0.0.1:0', '--admin', '127.0.0.1:0']);
  t.after(() => sc.kill());
  const lines = () => sc.stderr().split('\n').filter((l) => l.includes('"msg":"start-up heap compacted"'));
  await waitFor('the start-up heap compaction', () => lines().length > 0, 5000, () => sc.stderr());
  const c = JSON.parse(lines()[0]!) as { rssBeforeMiB: number; rssAfterMiB: number; pauseMs: number };
  t.diagnostic(`RSS ${c.rssBeforeMiB} -> ${c.rssAfterMiB} MiB, pause ${c.pauseMs} ms`);
  for (const k of ['rssBeforeMiB', 'rssAfterMiB', 'pauseMs'] as const) assert.ok(Number.isFinite(c[k]) && c[k] >= 0, `${k}: ${c[k]}`);
  // A NOTIMP needs no upstream: the sidecar still answers after the pause.
  const status = encodeQuery({ name: 'example.com', type: 'A' });
  status.writeUInt16BE(2 << 11, 2); // opcode STATUS
  assert.equal(decodeReply(await exchangeUdpRaw('127.0.0.1', sc.port, status)).rcode, 'NOTIMP');
  // Once in the process's life: stop it (SIGTERM drains and exits 0) and count in its whole log.
  const closed = once(sc.child, 'close');
  sc.child.kill('SIGTERM');
  const [code] = (await closed) as [number | null];
  assert.equal(code, 0, sc.stderr());
  assert.equal(lines().length, 1, 'once');
});

test('idle: the compaction leaves no gc() behind: --expose-gc is off again for every new context', () => {
  const c = compactHeap();
  assert.ok(c.rssAfterMiB > 0 && c.pauseMs >= 0);
  assert.equal(runInNewContext('typeof gc'), 'undefined');
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
});

/** The nice value of each thread of a process, by thread ID (getpriority(2) of a thread ID is that thread's). */
function threadNice(pid: number): Map<number, number> {
  return new Map(readdirSync(`/proc/${pid}/task`).map((tid) => [Number(tid), getPriority(Number(tid))]));
}

test('idle: the helper threads (V8 workers) run at nice 10, the main thread at the priority it was given', { skip: process.platform !== 'linux' && 'reads /proc' }, async (t) => {
  const sc = await spawnServing(['sidecar', '--upstream', 'udp://127.0.0.1:9']);
  t.after(() => sc.kill());
  const pid = sc.child.pid!;
  const find = () => sc.stderr().split('\n').find((l) => l.includes('"msg":"helper threads yield to the main thread"'));
  await waitFor('the helper threads log line', () => find() !== undefined, 5000, () => sc.stderr());
  const logged = JSON.parse(find()!) as { nice: number; reniced: number; failed: number };
  const nice = threadNice(pid);
  t.diagnostic(`threads: ${[...nice].map(([tid, n]) => `${tid}:${n}`).join(' ')}`);
  // The child inherits this process's nice value; its main thread must keep it.
  assert.equal(nice.get(pid), getPriority(), 'the main thread keeps its priority');
  const helpers = [...nice].filter(([tid]) => tid !== pid);
  assert.ok(helpers.length >= 1, 'V8 runs helper threads');
  for (const [tid, n] of helpers) assert.equal(n, Math.max(10, getPriority()), `thread ${tid}`);
  assert.deepEqual({ nice: logged.nice, failed: logged.failed }, { nice: 10, failed: 0 });
  if (getPriority() < 10) assert.ok(logged.reniced >= 1 && logged.reniced <= helpers.length, `reniced ${logged.reniced} of ${helpers.length}`);
});
