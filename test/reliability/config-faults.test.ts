/**
 * Config faults (issue 6 item 5): half-written, empty, directory, deleted and
 * permission-denied policy files, at start and at reload, against the real
 * CLI. (Invalid and missing files at start are in test/integration/cli.test.ts.)
 *
 * Permission checks need a non-root reader: when the tests run as root, the
 * sidecar child runs as nobody (uid/gid 65534), since root reads a mode-000
 * file anyway.
 *
 * Checked: start-up fails with exit 1 and one line naming the file and the
 * cause; at reload (SIGHUP and the file watcher), during a burst of 50
 * rewrites through valid, invalid, half-written, deleted and unreadable
 * states with queries flowing all the time, every query is answered and each
 * answer is one of the two valid policies', and afterwards the last good
 * policy is the one serving.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, openSync, rmSync, unlinkSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnCli, spawnServing, waitFor } from '../helpers/sidecar.ts';
import { addressesOf, rawQuery, startRawUpstream, udpAsk } from './lib.ts';

const ROOT_USER = process.getuid?.() === 0;
/** The uid/gid the sidecar runs as when the tests run as root. */
const NOBODY = 65534;

const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-config-faults-'));
chmodSync(dir, 0o755);
after(() => rmSync(dir, { recursive: true, force: true }));

/** A policy whose split zone answers `*.svc.faults.example` with `address`. */
function policy(address: string): string {
  return `apiVersion: tenant-dns.io/v1alpha1
kind: DNSPolicy
metadata:
  name: faults
spec:
  splitZones:
    - name: svc
      names: ["*.svc.faults.example"]
      addresses: ["${address}"]
      ttl: 1
`;
}

/** Spawn options that run the child as nobody when this process is root. */
const AS_NOBODY = ROOT_USER ? { uid: NOBODY, gid: NOBODY } : {};

/** A file the child (maybe nobody) can read. */
function readable(path: string, text: string): string {
  writeFileSync(path, text, { mode: 0o644 });
  return path;
}

async function startFails(policyPath: string): Promise<{ code: number; stderr: string }> {
  const p = spawnCli(['sidecar', '--listen', '127.0.0.1:0', '--upstream', 'udp://127.0.0.1:9', '--policy', policyPath], AS_NOBODY);
  const timer = setTimeout(() => void p.kill(), 15_000);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, stderr: p.stderr() };
}

describe('policy file faults at start-up', () => {
  test('a half-written (truncated) file: exit 1, CONFIG_INVALID naming the file and line', async () => {
    const text = policy('10.0.0.1');
    const path = readable(join(dir, 'half.yaml'), text.slice(0, text.indexOf('addresses') + 14));
    const r = await startFails(path);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /CONFIG_INVALID/);
    assert.match(r.stderr, /half\.yaml:\d+/);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  });

  test('an empty file: exit 1, "the file is empty"', async () => {
    const r = await startFails(readable(join(dir, 'empty.yaml'), ''));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /empty\.yaml:1: \(document\): the file is empty/);
  });

  test('a directory where the file should be: exit 1, CONFIG_READ', async () => {
    const path = join(dir, 'a-dir.yaml');
    mkdirSync(path, { mode: 0o755 });
    const r = await startFails(path);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /CONFIG_READ/);
    assert.match(r.stderr, /EISDIR|directory/i);
  });

  test('a permission-denied file (mode 000, read by a non-root sidecar): exit 1, CONFIG_READ with EACCES', async () => {
    const path = readable(join(dir, 'locked.yaml'), policy('10.0.0.1'));
    chmodSync(path, 0o000);
    const r = await startFails(path);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /CONFIG_READ/);
    assert.match(r.stderr, /EACCES|permission denied/i);
  });
});

describe('policy file faults at reload', () => {
  test('a burst of 50 rewrites (valid, invalid, half-written, deleted, unreadable) under steady queries: nothing dropped, answers from a valid policy, the last good one stays', async (t) => {
    const upstream = await startRawUpstream();
    const sub = join(dir, 'reload');
    mkdirSync(sub, { mode: 0o777 });
    const path = join(sub, 'policy.yaml');
    readable(path, policy('10.0.0.1'));
    if (ROOT_USER) chownSync(path, 0, 0);
    const p = await spawnServing(['sidecar', '--upstream', `udp://127.0.0.1:${upstream.port}`, '--policy', path], { spawn: AS_NOBODY });
    let running = true;
    t.after(async () => {
      running = false; // a failed assertion must not leave the query loops running
      await p.kill();
      await upstream.close();
    });
    const port = p.port;

    const valid = new Set(['10.0.0.1', '10.0.0.2']);
    const tally = { sent: 0, answered: 0, byAddress: {} as Record<string, number> };
    const problems: string[] = [];
    // Four steady query loops, each one query at a time with a 1 s deadline and no retry.
    const loops = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; running; i++) {
        tally.sent++;
        const r = await udpAsk(port, rawQuery(`n${w}x${i}.svc.faults.example`, 1, i & 0xffff), 1000);
        if (!r) {
          problems.push(`loop ${w} query ${i}: no answer within 1 s`);
          continue;
        }
        tally.answered++;
        const a = addressesOf(r);
        if (a.length !== 1 || !valid.has(a[0]!)) problems.push(`loop ${w} query ${i}: answer ${JSON.stringify(a)} rcode ${r[3]! & 15}`);
        else tally.byAddress[a[0]!] = (tally.byAddress[a[0]!] ?? 0) + 1;
        await sleep(2);
      }
    });

    /** Reloads the sidecar has logged so far: all of them, the successful ones, the failed ones. */
    const logged = (re: RegExp) => () => (p.stderr().match(re) ?? []).length;
    const reloads = logged(/"msg":"policy reload(ed| failed)/g);
    const loaded = logged(/"msg":"policy reloaded"/g);
    const failedReloads = logged(/"msg":"policy reload failed/g);
    /** Waits until `count` is above `after`. */
    const nextReload = (what: string, after: number, count: () => number) =>
      waitFor(what, () => count() > after, 5000, () => `the sidecar's last log lines: ${p.stderr().trim().split('\n').slice(-6).join(' | ')}`);
    /** What the file holds now, and the last valid address written. */
    let lastGood = '10.0.0.1';
    for (let i = 0; i < 50; i++) {
      const kind = ['valid', 'invalid', 'half', 'deleted', 'unreadable'][i % 5]!;
      const loadedBefore = loaded();
      switch (kind) {
        case 'valid':
          lastGood = lastGood === '10.0.0.1' ? '10.0.0.2' : '10.0.0.1';
          writeFileSync(path, policy(lastGood));
          chmodSync(path, 0o644);
          break;
        case 'invalid':
          writeFileSync(path, policy('300.0.0.1').replace('addresses', 'adresses'));
          break;
        case 'half': {
          // Written in two parts, the second once the watcher has reloaded the half (and failed, or not).
          const text = policy(lastGood === '10.0.0.1' ? '10.0.0.2' : '10.0.0.1');
          const fd = openSync(path, 'w');
          const seen = reloads();
          writeSync(fd, text.slice(0, text.length / 2));
          await nextReload(`step ${i}: the watcher to reload the half-written file`, seen, reloads);
          closeSync(fd);
          writeFileSync(path, policy('not-an-address'));
          break;
        }
        case 'deleted':
          unlinkSync(path);
          break;
        case 'unreadable':
          writeFileSync(path, policy('10.9.9.9'));
          chmodSync(path, 0o000);
          break;
      }
      if (i % 2 === 0) p.child.kill('SIGHUP');
      // After a valid write, the reload that loads it (on odd steps the watcher's alone); after a fault, the
      // next rewrite comes within the watcher's debounce, as in a burst.
      if (kind === 'valid') await nextReload(`step ${i}: the valid policy to load`, loadedBefore, loaded);
      else await sleep(60);
    }
    // A known good policy, then end on a fault: the last good policy must be the one serving.
    lastGood = '10.0.0.1';
    writeFileSync(path, policy(lastGood));
    chmodSync(path, 0o644);
    await waitFor(
      'the last valid policy to load',
      async () => addressesOf((await udpAsk(port, rawQuery('probe.svc.faults.example', 1, 2), 500)) ?? Buffer.alloc(0))[0] === lastGood,
      3000,
      () => `the sidecar's last log lines: ${p.stderr().trim().split('\n').slice(-6).join(' | ')}`,
    );
    const failedBefore = failedReloads();
    writeFileSync(path, 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nspec:\n  splitZones: [{ name: svc, names: [');
    p.child.kill('SIGHUP');
    await nextReload('the broken file to be rejected', failedBefore, failedReloads);
    running = false;
    await Promise.all(loops);
    const final = await udpAsk(port, rawQuery('final.svc.faults.example', 1, 3), 1000);
    const failures = failedReloads();
    t.diagnostic(`queries: ${tally.sent} sent, ${tally.answered} answered, by address ${JSON.stringify(tally.byAddress)}; reload failures logged: ${failures}; last good ${lastGood}${ROOT_USER ? '; sidecar ran as uid 65534' : ''}`);
    assert.deepEqual(problems.slice(0, 10), []);
    assert.equal(tally.answered, tally.sent, 'every query answered');
    assert.ok(final, 'answered after the burst');
    assert.deepEqual(addressesOf(final), [lastGood], 'the last good policy keeps serving');
    assert.ok(failures >= 10, `the failed reloads were logged (${failures})`);
    assert.ok((tally.byAddress['10.0.0.1'] ?? 0) > 0 && (tally.byAddress['10.0.0.2'] ?? 0) > 0, 'both valid policies served during the burst');
    assert.equal(p.child.exitCode, null, 'still running');
    const lines = p.stderr().trim().split('\n');
    for (const line of lines) assert.doesNotThrow(() => JSON.parse(line), `a log line that is not JSON: ${line}`);
    assert.ok(lines.some((l) => /EACCES/.test(l)), 'the unreadable file was reported with EACCES');
    assert.ok(lines.some((l) => /ENOENT/.test(l)), 'the deleted file was reported with ENOENT');
  });
});
