/**
 * The sidecar's random source (sidecar/runtime/random.ts): the kernel's
 * generator read with node:fs, node:crypto only where the device is missing,
 * and never zeros in place of random bytes. And the reason it exists: a
 * sidecar that forwards queries does not load node:crypto.
 */
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fillRandom, randomBytes, randomSource } from '../../../sidecar/runtime/random.ts';
import { startDnsServer } from '../../helpers/dns-server.ts';
import { queryUdp } from '../../helpers/dns-client.ts';
import { CLI, spawnServing } from '../../helpers/sidecar.ts';

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tdns-random-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('random: the bytes come from the device, read on from where the last fill stopped', (t) => {
  const device = join(scratch(t), 'device');
  const content = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff));
  writeFileSync(device, content);
  const fill = randomSource(device);
  const a = new Uint8Array(24);
  const b = new Uint16Array(8);
  fill(a);
  fill(b);
  assert.deepEqual(Buffer.from(a), content.subarray(0, 24));
  assert.deepEqual(Buffer.from(b.buffer, b.byteOffset, b.byteLength), content.subarray(24, 40));
});

test('random: a short read is read on until the buffer is full', async (t) => {
  const fifo = join(scratch(t), 'fifo');
  execFileSync('mkfifo', [fifo]);
  // The writer sends 3 bytes, waits, then 5: the first read returns 3 of the 8 asked for.
  const writer = spawn('sh', ['-c', `exec > '${fifo}'; printf 'abc'; sleep 0.2; printf 'defgh'`], { stdio: 'ignore' });
  const done = new Promise((r) => writer.on('exit', r));
  const out = new Uint8Array(8);
  randomSource(fifo)(out);
  await done;
  assert.equal(Buffer.from(out).toString('latin1'), 'abcdefgh');
});

test('random: a device that gives nothing is an error, never a buffer left as it was', (t) => {
  const device = join(scratch(t), 'empty');
  writeFileSync(device, '');
  const out = new Uint8Array(16);
  assert.throws(() => randomSource(device)(out), /reading .*empty: got no bytes/);
  assert.ok(out.every((b) => b === 0));
});

test('random: without the device, node:crypto fills the buffer', () => {
  const fill = randomSource('/nonexistent/tenant-dns/urandom');
  const a = new Uint8Array(64);
  const b = new Uint8Array(64);
  fill(a);
  fill(b);
  assert.ok(a.some((x) => x !== 0), 'filled');
  assert.notDeepEqual(a, b);
});

test('random: the process source gives different bytes on every call', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) seen.add(randomBytes(8).toString('hex'));
  assert.equal(seen.size, 200);
  const ids = new Uint16Array(4096);
  fillRandom(ids);
  // 4096 draws from 65,536 values: about 122 repeats expected; far more would mean a broken source.
  assert.ok(new Set(ids).size > 3800, `distinct IDs: ${new Set(ids).size}`);
});

test('random: a sidecar that forwards queries never loads node:crypto', async (t) => {
  const dir = scratch(t);
  const listFile = join(dir, 'modules.txt');
  const hook = join(dir, 'hook.cjs');
  // Written at exit: every built-in module the process loaded.
  writeFileSync(hook, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(listFile)}, process.moduleLoadList.join('\\n')));\n`);
  const upstream = await startDnsServer();
  t.after(() => upstream.close());
  const sidecar = await spawnServing(['sidecar', `--upstream=${upstream.url('udp')}`], { entry: ['--require', hook, CLI] });
  t.after(() => sidecar.kill());
  const reply = await queryUdp('127.0.0.1', sidecar.port, { name: 'www.example.test', type: 'A' });
  assert.equal(reply.rcode, 'NOERROR');
  assert.equal(upstream.counts.udp, 1, 'the query was forwarded, with an ID from the random source');
  sidecar.child.kill('SIGTERM');
  assert.equal(await sidecar.exited, 0);
  const loaded = readFileSync(listFile, 'utf8').split('\n');
  assert.ok(loaded.includes('NativeModule dgram'), 'the hook saw the modules');
  assert.deepEqual(loaded.filter((m) => /^NativeModule (crypto|internal\/crypto\/)/.test(m)), []);
});
