/**
 * The shared deadline lists (sidecar/upstream/deadlines.ts): deadlines expire
 * in order, never early, removed ones never, and one added while others
 * expire does not delay the ones already due.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { addDeadline, type DeadlineList, type Timed } from '../../../sidecar/upstream/deadlines.ts';

/** A deadline that records when it expired. */
function timed(name: string, log: string[], onExpire?: () => void): Timed & { setAt: number; firedAt: number } {
  return {
    at: 0,
    prev: null,
    next: null,
    linked: false,
    setAt: 0,
    firedAt: -1,
    expire() {
      this.firedAt = performance.now();
      log.push(name);
      onExpire?.();
    },
  };
}

describe('deadline lists', () => {
  it('expire in the order set, never before their time; removed ones never', async () => {
    const log: string[] = [];
    const { promise: done, resolve } = Promise.withResolvers<void>();
    const ts = ['a', 'b', 'c', 'd'].map((n) => timed(n, log, n === 'd' ? resolve : undefined));
    const lists: DeadlineList[] = [];
    for (const t of ts) {
      t.setAt = performance.now();
      lists.push(addDeadline(t, 20));
    }
    lists[1]!.remove(ts[1]!);
    lists[1]!.remove(ts[1]!); // idempotent
    await done;
    assert.deepEqual(log, ['a', 'c', 'd']);
    for (const t of [ts[0]!, ts[2]!, ts[3]!]) assert.ok(t.firedAt - t.setAt >= 19.9, `fired after ${t.firedAt - t.setAt} ms`);
    assert.equal(ts[1]!.firedAt, -1);
  });

  it('a deadline added from an expiring one does not hold back the ones already due', async () => {
    const log: string[] = [];
    const { promise: done, resolve } = Promise.withResolvers<void>();
    const late = timed('late', log, resolve);
    const second = timed('second', log);
    // `first` re-arms the list with a fresh 30 ms deadline while `second` (set 15 ms after it) is still pending.
    const first = timed('first', log, () => addDeadline(late, 30));
    addDeadline(first, 30);
    await new Promise((r) => setTimeout(r, 15));
    second.setAt = performance.now();
    addDeadline(second, 30);
    await done;
    assert.deepEqual(log, ['first', 'second', 'late']);
    assert.ok(second.firedAt - second.setAt < late.firedAt - second.setAt, 'second expired before late');
    assert.ok(late.firedAt - second.firedAt >= 5, `late came ${late.firedAt - second.firedAt} ms after second`);
  });

  it('different durations keep separate lists: a short one set later expires first', async () => {
    const log: string[] = [];
    const { promise: done, resolve } = Promise.withResolvers<void>();
    addDeadline(timed('long', log, resolve), 40);
    addDeadline(timed('short', log), 5);
    await done;
    assert.deepEqual(log, ['short', 'long']);
  });

  it('a deadline set while the timer of an emptied list is still armed expires on its own time, not the old one', async () => {
    const log: string[] = [];
    const { promise: done, resolve } = Promise.withResolvers<void>();
    const first = timed('first', log);
    addDeadline(first, 40).remove(first); // the list is empty; its timer stays armed for 40 ms from now
    await new Promise((r) => setTimeout(r, 20));
    const second = timed('second', log, resolve);
    second.setAt = performance.now();
    addDeadline(second, 40);
    await done;
    assert.deepEqual(log, ['second']);
    assert.ok(second.firedAt - second.setAt >= 39.9, `fired ${second.firedAt - second.setAt} ms after it was set`);
  });

  it('an emptied list does not keep the process alive until its timer', () => {
    // A child sets a one-minute deadline and removes it: it must exit as soon as it has nothing else to do.
    const module = fileURLToPath(new URL('../../../sidecar/upstream/deadlines.ts', import.meta.url));
    const script = `import { addDeadline } from ${JSON.stringify(module)};
      const t = { at: 0, prev: null, next: null, linked: false, expire() { console.log('expired'); } };
      addDeadline(t, 60000).remove(t);
      console.log('removed');`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(child.error, undefined, 'the child exited by itself (no kill after 30 s)');
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout, 'removed\n');
  });
});
