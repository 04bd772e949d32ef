/**
 * A tenant cannot shadow the platform layer through its policy file: a
 * forward zone equal to or below a platform forward zone, or a split zone
 * whose CNAME target the platform denies, is a validation error naming the
 * file, line and field, at load and in `policy validate`; the last good
 * policy keeps serving.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateFiles } from '../../../sidecar/policy/cli.ts';
import { PolicyManager } from '../../../sidecar/policy/manager.ts';
import { classify } from '../../../sidecar/route/classify.ts';

const DOC = (spec: string) => `apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata:\n  name: t\nspec:\n${spec}\n`;
const PLATFORM = DOC(
  [
    '  rules:',
    '    - {name: no-exfil, action: deny, names: ["*.exfil.example"]}',
    '  forwardZones:',
    '    - name: corp',
    '      zones: [corp.example]',
    '      upstreams: ["udp://127.0.0.1:5301"]',
  ].join('\n'),
);
const TENANT = DOC(
  [
    '  forwardZones:',
    '    - name: mine',
    '      zones:',
    '        - git.corp.example',
    '        - own.example',
    '      upstreams: ["udp://127.0.0.1:5302"]',
    '  splitZones:',
    '    - name: kafka',
    '      names: ["*.kafka.test"]',
    '      cname: vpce-1.exfil.example',
  ].join('\n'),
);
const GOOD = DOC('  forwardZones:\n    - {name: mine, zones: [own.example], upstreams: ["udp://127.0.0.1:5302"]}');

function files(t: { after(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'shadow-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const platform = join(dir, 'platform.yaml');
  const tenant = join(dir, 'tenant.yaml');
  writeFileSync(platform, PLATFORM);
  writeFileSync(tenant, TENANT);
  return { platform, tenant };
}

test('shadowing: policy validate --platform-policy names a forward zone under a platform zone and a split target the platform denies', (t) => {
  const { platform, tenant } = files(t);
  // Alone, the tenant file is well formed: only against the platform is it a takeover.
  assert.equal(validateFiles([tenant]).exitCode, 0);
  const r = validateFiles([tenant], { platformPolicy: platform });
  assert.equal(r.exitCode, 1);
  assert.deepEqual(r.output.trimEnd().split('\n'), [
    `${platform}: ok`,
    `${tenant}:9: spec.forwardZones[0].zones[0]: "git.corp.example" lies in the platform's forward zone corp.example ("corp"): a tenant cannot take over names the platform forwards`,
    `${tenant}:15: spec.splitZones[0].cname: target "vpce-1.exfil.example" is denied by platform rule platform:no-exfil: the split zone would hand out a name the platform denies`,
  ]);
});

test('shadowing: the sidecar refuses such a tenant policy at start, and keeps the last good one on reload', (t) => {
  const { platform, tenant } = files(t);
  assert.throws(() => new PolicyManager({ policy: tenant, platformPolicy: platform, watch: false }), /lies in the platform's forward zone corp\.example/);
  writeFileSync(tenant, GOOD);
  const manager = new PolicyManager({ policy: tenant, platformPolicy: platform, watch: false });
  t.after(() => manager.close());
  writeFileSync(tenant, TENANT);
  const r = manager.reload();
  assert.equal(r.ok, false);
  assert.match(r.error!.message, /tenant\.yaml:9: spec\.forwardZones\[0\]\.zones\[0\]/);
  const route = classify(manager.current, [], 'git.corp.example');
  assert.equal(route.kind === 'forward' && route.group, 'platform:corp', 'the platform zone still answers its names');
});

test('shadowing: a tenant file cannot hold back a platform change; the platform wins where they conflict', (t) => {
  const { platform, tenant } = files(t);
  // Before: the platform forwards nothing the tenant's zones touch, and denies nothing its split zone names.
  writeFileSync(platform, DOC('  rules: []'));
  const lines: string[] = [];
  const manager = new PolicyManager({ policy: tenant, platformPolicy: platform, watch: false, log: (_l, msg, f) => lines.push(`${msg} ${JSON.stringify(f)}`) });
  t.after(() => manager.close());
  assert.equal(classify(manager.current, [], 'git.corp.example').kind === 'forward' && (classify(manager.current, [], 'git.corp.example') as { group: string }).group, 'mine');
  // The platform takes corp.example and denies *.exfil.example: the unchanged tenant file now conflicts with it.
  writeFileSync(platform, PLATFORM);
  assert.equal(manager.reload().ok, true, 'the platform change loads');
  const route = classify(manager.current, [], 'git.corp.example');
  assert.equal(route.kind === 'forward' && route.group, 'platform:corp', "the tenant's zone below the platform's is left out");
  assert.equal(classify(manager.current, [], 'x.own.example').kind === 'forward', true, "the tenant's other zone still works");
  assert.ok(lines.some((l) => l.includes('the platform policy now conflicts with the unchanged tenant policy') && l.includes('tenant.yaml:9')));
  // A tenant file changed into such a conflict is refused, and the last good policy keeps serving.
  writeFileSync(tenant, TENANT.replace('own.example', 'own2.example'));
  assert.equal(manager.reload().ok, false);
  assert.equal(classify(manager.current, [], 'x.own.example').kind, 'forward');
});
