/**
 * Start-up order (issue 19): the DNS listeners answer as soon as they are
 * bound, before the metrics and admin servers come up, so the policy must be
 * in force before the first answer (fail closed), and readiness still comes
 * only with the HTTP servers.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { decodeReply, encodeQuery, type DecodedReply } from '../helpers/dns-client.ts';
import { startDnsServer } from '../helpers/dns-server.ts';
import { freePort } from '../helpers/ports.ts';
import { spawnCli, waitFor } from '../helpers/sidecar.ts';

const POLICY = 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata:\n  name: t\nspec:\n  rules:\n    - name: no-blocked\n      action: deny\n      names: ["*.blocked.test"]\n';

test('sidecar start: the first answer, sent while the sidecar starts, already applies the policy; /readyz answers once it serves', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tdns-start-order-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(policy, POLICY);
  const upstream = await startDnsServer();
  t.after(() => upstream.close());
  const port = await freePort();
  const client = dgram.createSocket('udp4');
  t.after(() => client.close());
  client.on('error', () => {}); // port unreachable until the sidecar binds
  let first: DecodedReply | undefined;
  client.on('message', (msg) => (first ??= decodeReply(msg)));
  await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
  const query = encodeQuery({ name: 'x.blocked.test', type: 'A', id: 4242 });
  // Queries go out from before the process starts, so one waits on the socket the moment it is bound.
  const probe = setInterval(() => client.send(query, port, '127.0.0.1'), 2);
  t.after(() => clearInterval(probe));
  client.send(query, port, '127.0.0.1');
  const p = spawnCli(['sidecar', '--listen', `127.0.0.1:${port}`, '--upstream', upstream.url('udp'), '--policy', policy, '--metrics', '127.0.0.1:0']);
  t.after(() => p.kill());
  await waitFor('the first answer', () => first !== undefined, 15_000, () => p.stderr());
  clearInterval(probe);
  assert.equal(first!.rcode, 'NXDOMAIN', 'denied by the policy, never forwarded');
  assert.equal(upstream.counts.total, 0);
  await waitFor('sidecar serving', () => p.stderr().includes('"msg":"sidecar serving"'), 15_000, () => p.stderr());
  const metrics = /"metrics":"127\.0\.0\.1:(\d+)"/.exec(p.stderr())?.[1];
  assert.ok(metrics, p.stderr());
  const res = await fetch(`http://127.0.0.1:${metrics}/readyz`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'ok\n');
  p.child.kill('SIGTERM');
  assert.equal(await p.exited, 0);
});
