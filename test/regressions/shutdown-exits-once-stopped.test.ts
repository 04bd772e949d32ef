/**
 * Regression (DNS correctness #10): after SIGTERM the process logged
 * 'sidecar stopped' and then lived on for 1 to 2 s before it exited: some
 * timer or handle outlived the shutdown. Once stopped, nothing of the
 * sidecar's keeps the event loop alive, so the process exits at once.
 *
 * The sidecar here has what a pod's has at shutdown: a watched policy file,
 * UDP and TCP upstreams that have been used, a client's TCP connection still
 * open and a keep-alive metrics scrape.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startDnsServer } from '../helpers/dns-server.ts';
import { buildQuery } from '../helpers/dns-wire.ts';
import { streamSession, udpSession } from '../helpers/dns-sessions.ts';
import { spawnServing, waitFor } from '../helpers/sidecar.ts';

test('SIGTERM: the process exits right after it logs "sidecar stopped"', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-shutdown-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'policy.yaml'), 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: { name: p }\nspec: {}\n');
  const upstream = await startDnsServer();
  t.after(() => upstream.close());
  const sc = await spawnServing(['sidecar', '--upstream', upstream.url('udp'), '--upstream', upstream.url('tcp'), '--policy', join(dir, 'policy.yaml')]);
  t.after(() => sc.kill());
  const udp = await udpSession(sc.port);
  const tcp = streamSession({ port: sc.port });
  t.after(() => {
    udp.close();
    tcp.close();
  });
  await udp.query(buildQuery({ name: 'www.example', type: 'A' }));
  await tcp.query(buildQuery({ name: 'big.example', type: 'TXT' })); // over the UDP upstream's size: its TCP fallback too
  const agent = new http.Agent({ keepAlive: true });
  t.after(() => agent.destroy());
  await new Promise<void>((resolve, reject) =>
    http.get({ host: sc.metrics!.host, port: sc.metrics!.port, path: '/metrics', agent }, (res) => res.resume().on('end', resolve)).on('error', reject),
  );
  let stoppedAt = 0;
  sc.child.stderr!.on('data', () => {
    if (stoppedAt === 0 && sc.stderr().includes('"msg":"sidecar stopped"')) stoppedAt = performance.now();
  });
  sc.child.kill('SIGTERM');
  assert.equal(await sc.exited, 0);
  const exitedAt = performance.now();
  await waitFor('the stop line', () => stoppedAt > 0, 1000, () => sc.stderr());
  // Writing the line and exiting are one step apart; 1–2 s is a handle left open. 300 ms leaves room for a busy machine.
  assert.ok(exitedAt - stoppedAt < 300, `exited ${Math.round(exitedAt - stoppedAt)} ms after "sidecar stopped"`);
});
