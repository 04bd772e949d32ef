/**
 * `--policy-optional` on a real sidecar process: a namespace without a
 * tenant policy starts pods that resolve with the platform layer alone, and
 * the tenant's file is picked up when the kubelet mounts it (the `..data`
 * symlink swap of a ConfigMap volume). Without the flag, a missing file
 * stays a start-up error naming the file (test/integration/cli.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extendedError, queryUdp } from '../helpers/dns-client.ts';
import { startDnsServer } from '../helpers/dns-server.ts';
import { spawnServing, waitFor } from '../helpers/sidecar.ts';

const denying = (rule: string, name: string) =>
  `apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: {name: p}\nspec:\n  rules:\n    - {name: ${rule}, action: deny, names: [${name}]}\n`;

test('--policy-optional: a missing tenant file serves the platform layer alone, and the file is loaded when the ConfigMap appears', async (t) => {
  const upstream = await startDnsServer();
  t.after(() => upstream.close());
  const root = mkdtempSync(join(tmpdir(), 'policy-optional-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const platform = join(root, 'platform.yaml');
  writeFileSync(platform, denying('no-onion', '"*.onion"'));
  // The volume of an optional ConfigMap that does not exist: an empty directory.
  const volume = join(root, 'tenant-policy');
  mkdirSync(volume);
  const file = join(volume, 'policy.yaml');

  const p = await spawnServing(['sidecar', '--upstream', upstream.url('udp'), '--platform-policy', platform, '--policy', file, '--policy-optional']);
  t.after(() => p.kill());
  const absent = p.stderr().split('\n').filter((l) => l.includes('no tenant policy file'));
  assert.equal(absent.length, 1, p.stderr());
  assert.equal(JSON.parse(absent[0]!).file, file, 'the line names the file');
  const ask = (name: string) => queryUdp('127.0.0.1', p.port, { name, type: 'A' });
  assert.equal((await ask('shop.example.com')).rcode, 'NOERROR', 'served without a tenant policy');
  const onion = await ask('x.onion');
  assert.equal(onion.rcode, 'NXDOMAIN');
  assert.equal(extendedError(onion)?.text, 'blocked by tenant-dns policy rule platform:no-onion', 'the platform layer applies');

  // The tenant creates a DNSPolicy; the kubelet writes the ConfigMap volume.
  mkdirSync(join(volume, '..2026_01_01_00_00_00.1'));
  writeFileSync(join(volume, '..2026_01_01_00_00_00.1', 'policy.yaml'), denying('no-shop', 'shop.example.com'));
  symlinkSync('..2026_01_01_00_00_00.1', join(volume, '..data_tmp'));
  renameSync(join(volume, '..data_tmp'), join(volume, '..data'));
  symlinkSync('..data/policy.yaml', file);
  const metrics = `http://127.0.0.1:${p.metrics!.port}/metrics`;
  await waitFor('a successful policy reload', async () => /tenant_dns_policy_reloads_total\{result="success"[^}]*\} 1\b/.test(await (await fetch(metrics)).text()), 5000, () => p.stderr());
  const shop = await ask('shop.example.com');
  assert.equal(shop.rcode, 'NXDOMAIN');
  assert.equal(extendedError(shop)?.text, 'blocked by tenant-dns policy rule no-shop', 'the tenant rule applies once its file appears');
  assert.equal((await ask('x.onion')).rcode, 'NXDOMAIN');
  assert.equal(p.stderr().split('\n').filter((l) => l.includes('no tenant policy file')).length, 1, 'said once');
});
