/**
 * The `tenant-dns` command as a process: start-up failures exit non-zero
 * with one clear line, SIGTERM drains in-flight queries and exits 0, and
 * `policy validate` / `policy explain` print what a user reads.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { queryUdp, queryTcp } from '../helpers/dns-client.ts';
import { startDnsServer } from '../helpers/dns-server.ts';
import { freePort } from '../helpers/ports.ts';
import { runCli, spawnServing, waitFor } from '../helpers/sidecar.ts';

const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('tenant-dns sidecar start-up', () => {
  test('refuses to forward to its own listen address, exit 1 with a clear line', async () => {
    const port = await freePort();
    const r = await runCli(['sidecar', '--listen', `127.0.0.1:${port}`, '--upstream', `udp://127.0.0.1:${port}`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /CONFIG_LOOP/);
    assert.match(r.stderr, /own listen address/);
  });

  test('refuses a cluster DNS that is its own listen address (wildcard listener)', async () => {
    const port = await freePort();
    const r = await runCli(['sidecar', '--listen', `0.0.0.0:${port}`, '--upstream', 'udp://192.0.2.53:53', '--cluster-dns', `127.0.0.1:${port}`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--cluster-dns 127\.0\.0\.1:\d+ is the sidecar's own listen address/);
  });

  test('a bad flag value names the flag', async () => {
    const r = await runCli(['sidecar', '--listen', 'localhost', '--upstream', 'udp://192.0.2.53:53']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--listen/);
  });

  test('an invalid policy file stops start-up with file:line and field', async () => {
    const policy = file('bad.yaml', 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nspec:\n  rules:\n    - name: x\n      action: block\n      names: ["a.example"]\n');
    const port = await freePort();
    const r = await runCli(['sidecar', '--listen', `127.0.0.1:${port}`, '--upstream', 'udp://192.0.2.53:53', '--policy', policy]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad\.yaml:6: spec\.rules\[0\]\.action/);
  });

  test('a missing or unreadable policy file stops start-up (without --policy-optional)', async () => {
    const port = await freePort();
    const missing = await runCli(['sidecar', '--listen', `127.0.0.1:${port}`, '--upstream', 'udp://192.0.2.53:53', '--policy', join(dir, 'nope.yaml')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /CONFIG_READ/);
    assert.ok(missing.stderr.includes(`${join(dir, 'nope.yaml')}: (file): cannot be read: no such file`), 'the line names the file');
    if (process.getuid?.() !== 0) {
      const locked = file('locked.yaml', 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nspec: {}\n');
      chmodSync(locked, 0o000);
      const denied = await runCli(['sidecar', '--listen', `127.0.0.1:${port}`, '--upstream', 'udp://192.0.2.53:53', '--policy', locked]);
      assert.equal(denied.code, 1);
      assert.match(denied.stderr, /EACCES|permission/i);
    }
  });
});

describe('tenant-dns sidecar shutdown', () => {
  test('SIGTERM: queries in flight are answered, then the process exits 0', async (t) => {
    // An upstream that takes 600 ms to answer, so the queries are in flight when SIGTERM arrives.
    const slow = await startDnsServer({ handler: () => ({ delayMs: 600 }) });
    t.after(() => slow.close());
    // A port picked below the ephemeral range: after the exit, no kernel-chosen
    // socket of a neighbouring test (another sidecar on port 0) can take it and
    // answer the last query below.
    const listenPort = await freePort();
    const p = await spawnServing(['sidecar', '--upstream', slow.url('udp'), '--listen', `127.0.0.1:${listenPort}`]);
    t.after(() => p.kill());
    const port = p.port;
    const udp = queryUdp('127.0.0.1', port, { name: 'a.example', type: 'A' }, 3000);
    const tcp = queryTcp('127.0.0.1', port, { name: 'b.example', type: 'A' }, 3000);
    await waitFor('both queries to reach the upstream', () => slow.counts.total >= 2, 3000);
    p.child.kill('SIGTERM');
    const [u, c] = await Promise.all([udp, tcp]);
    assert.equal(u.rcode, 'NOERROR');
    assert.equal(c.rcode, 'NOERROR');
    assert.equal(await p.exited, 0);
    assert.match(p.stderr(), /draining/);
    // Nothing listens any more.
    await assert.rejects(queryUdp('127.0.0.1', port, { name: 'c.example', type: 'A' }, 300));
  });
});

describe('tenant-dns policy', () => {
  test('validate: ok for good files, file:line: field: message and exit 1 for a bad one', async () => {
    const good = await runCli(['policy', 'validate', 'examples/kafka-privatelink.yaml', 'examples/frontend-deny-com.yaml']);
    assert.equal(good.code, 0);
    assert.match(good.stdout, /kafka-privatelink\.yaml: ok/);
    const bad = file('bad-glob.yaml', 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: { name: x }\nspec:\n  rules:\n    - name: x\n      action: deny\n      names: ["a.*.example"]\n');
    const r = await runCli(['policy', 'validate', bad]);
    assert.equal(r.code, 1);
    assert.match(r.stdout + r.stderr, /bad-glob\.yaml:8: spec\.rules\[0\]\.names\[0\]: /);
  });

  test('explain: names the deciding rule and the answer', async () => {
    const r = await runCli(['policy', 'explain', '--policy', 'examples/frontend-deny-com.yaml', '--pod-labels', file('labels', 'app="frontend"\n'), 'shop.example.com', 'A']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /deny/);
    assert.match(r.stdout, /NXDOMAIN/);
  });
});
