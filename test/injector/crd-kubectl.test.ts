/**
 * The CRDs of deploy/crds/ with Debian's kubectl against the stand-in API
 * server (test/helpers/kube-api.ts): applied as shipped, the examples apply
 * through them (with the schema's defaults filled in by the server), the
 * printer columns show the status renderAll computes, the category lists
 * both kinds, and an object the schema refuses is refused with the field.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { renderAll, settingsFromConfig } from '../../injector/render.ts';
import { parseInjectorConfig } from '../../injector/config.ts';
import { startKubeApi } from '../helpers/kube-api.ts';

const KUBECTL = '/usr/bin/kubectl';
const skip = existsSync(KUBECTL) ? false : 'kubectl is not installed (/usr/bin/kubectl)';
const ROOT = join(import.meta.dirname, '..', '..');

/** The rows of a `kubectl get` table, split on runs of spaces. */
function rows(text: string): string[][] {
  return text.trim().split('\n').map((l) => l.trim().split(/\s+/));
}

test('crd kubectl: the shipped CRDs apply, the examples apply through them, get prints the status columns', { skip, timeout: 120_000 }, async (t) => {
  const api = await startKubeApi();
  t.after(() => api.close());
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-crd-kubectl-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const kubectl = (...args: string[]) =>
    new Promise<string>((resolve, reject) => {
      execFile(KUBECTL, ['--kubeconfig', api.kubeconfigPath, ...args], { env: { PATH: '/usr/bin:/bin', HOME: dir }, cwd: dir, timeout: 60_000 }, (err, stdout, stderr) =>
        err ? reject(Object.assign(new Error(`kubectl ${args.join(' ')}: ${stderr}`), { stderr })) : resolve(stdout),
      );
    });

  assert.match(await kubectl('apply', '-f', join(ROOT, 'deploy', 'crds', 'dnspolicies.yaml'), '-f', join(ROOT, 'deploy', 'crds', 'clusterdnspolicies.yaml')), /dnspolicies.tenant-dns.io created[\s\S]*clusterdnspolicies.tenant-dns.io created/);
  await kubectl('apply', '-f', join(ROOT, 'examples', 'control-plane'));
  await kubectl('apply', '-f', join(ROOT, 'examples', 'allowlist.yaml'), '-f', join(ROOT, 'examples', 'static-split.yaml'));
  // The server filled in the schema's defaults.
  const stored = api.get('dnspolicies', 'static-split', 'team-a')!;
  assert.equal((stored.spec as { defaultAction: string }).defaultAction, 'allow');

  // What the controller would set: renderAll's statuses, written to the status of each object.
  const result = renderAll(
    { namespaces: api.list('namespaces'), clusterPolicies: api.list('clusterdnspolicies'), policies: api.list('dnspolicies') },
    settingsFromConfig(parseInjectorConfig({ clusterDns: '10.96.0.10:53' })),
  );
  for (const s of result.statuses) {
    const plural = s.kind === 'ClusterDNSPolicy' ? 'clusterdnspolicies' : 'dnspolicies';
    const o = api.get(plural, s.name, s.namespace)!;
    const condition = { type: 'Accepted', status: s.accepted ? 'True' : 'False', reason: s.reason, message: s.message, lastTransitionTime: '2026-01-01T00:00:00Z' };
    api.put({ ...o, status: { observedGeneration: 1, conditions: [condition], namespaces: s.namespaces } });
  }
  const cluster = rows(await kubectl('get', 'cdnsp'));
  assert.deepEqual(cluster[0], ['NAME', 'ACCEPTED', 'REASON', 'NAMESPACES', 'AGE']);
  assert.deepEqual(cluster.slice(1).map((r) => r.slice(0, 4)), [['baseline', 'True', 'Accepted', '6'], ['regulated', 'True', 'Accepted', '1']]);
  const tenant = rows(await kubectl('get', 'dnsp', '-A'));
  assert.deepEqual(tenant[0], ['NAMESPACE', 'NAME', 'ACCEPTED', 'REASON', 'AGE']);
  assert.deepEqual(tenant.slice(1).map((r) => r.slice(0, 4)).sort(), [['payments', 'payments-allowlist', 'True', 'Accepted'], ['team-a', 'static-split', 'True', 'Accepted']]);
  // The category names both kinds.
  const names = (await kubectl('get', 'tenant-dns', '-A', '-o', 'name')).trim().split('\n').sort();
  assert.deepEqual(names, [
    'clusterdnspolicy.tenant-dns.io/baseline',
    'clusterdnspolicy.tenant-dns.io/regulated',
    'dnspolicy.tenant-dns.io/payments-allowlist',
    'dnspolicy.tenant-dns.io/static-split',
  ]);

  // The schema refuses what it can say is wrong, naming the field; a serviceDiscovery in a DNSPolicy is not a field.
  writeFileSync(join(dir, 'bad.yaml'), 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: {name: bad, namespace: team-a}\nspec:\n  rules: [{name: x, action: block, names: [a.example]}]\n');
  await assert.rejects(kubectl('apply', '-f', join(dir, 'bad.yaml')), (err: { stderr: string }) => /spec\.rules\[0\]\.action: Unsupported value: "block"/.test(err.stderr));
  writeFileSync(join(dir, 'sd.yaml'), 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: {name: sd, namespace: team-a}\nspec:\n  serviceDiscovery: {isolation: none}\n');
  await assert.rejects(kubectl('apply', '-f', join(dir, 'sd.yaml')), (err: { stderr: string }) => /unknown field "spec\.serviceDiscovery"/.test(err.stderr));
});
