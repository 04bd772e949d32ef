import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { explain, validateFiles } from '../../../sidecar/policy/cli.ts';

const examples = new URL('../../../examples/', import.meta.url).pathname;
const ex = (f: string) => join(examples, f);

test('policy validate: ok files print "file: ok" and exit 0', () => {
  const r = validateFiles([ex('kafka-privatelink.yaml'), ex('frontend-deny-com.yaml')]);
  assert.equal(r.exitCode, 0);
  assert.equal(r.output, `${ex('kafka-privatelink.yaml')}: ok\n${ex('frontend-deny-com.yaml')}: ok\n`);
});

test('policy validate: problems print file:line: field: message and exit 1', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tdns-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata:\n  name: x\nspec:\n  rules:\n    - name: Bad_Name\n      action: deny\n      names: ["**.com"]\n');
  const missing = join(dir, 'missing.yaml');
  const r = validateFiles([bad, ex('allowlist.yaml'), missing]);
  assert.equal(r.exitCode, 1);
  assert.deepEqual(r.output.trimEnd().split('\n'), [
    `${bad}:7: spec.rules[0].name: must match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`,
    `${bad}:9: spec.rules[0].names[0]: "**" is not supported in "**.com": "*." at the start already matches any depth`,
    `${ex('allowlist.yaml')}: ok`,
    `${missing}: (file): cannot be read: no such file`,
  ]);
});

test('policy explain: a tenant deny with its answer', () => {
  const out = explain({ policy: ex('frontend-deny-com.yaml'), podLabels: undefined, name: 'GitHub.com.', type: 'A' });
  assert.match(out, /decided by: the tenant default action/, 'no pod labels: the selector leaves the rule out');
});

test('policy explain: selector-scoped rule with pod labels', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tdns-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'labels'), 'app="frontend"\n');
  const out = explain({ policy: ex('frontend-deny-com.yaml'), podLabels: join(dir, 'labels'), name: 'api.github.com' });
  assert.equal(
    out,
    [
      'query: api.github.com A',
      'decided by: tenant rule "frontend-no-com" (glob *.com)',
      'action: deny (logged)',
      'answer: NXDOMAIN with SOA com and EDE 15 (Blocked)',
      '',
    ].join('\n'),
  );
});

test('policy explain: the platform decides first', () => {
  const out = explain({ policy: ex('allowlist.yaml'), platformPolicy: ex('platform-policy.yaml'), name: 'c2-9.badnet.example', type: 'A' });
  assert.match(out, /decided by: platform rule "known-bad" \(glob c2-\*\.badnet\.example\)/);
  assert.match(out, /answer: sinkhole A 0\.0\.0\.0 \(TTL 300\)/);
  assert.match(explain({ policy: ex('allowlist.yaml'), name: 'www.google.com' }), /decided by: the tenant default action\naction: deny/);
});

test('policy explain: split zones, forward zones, cluster zone, default upstreams', () => {
  const kafka = explain({ policy: ex('kafka-privatelink.yaml'), name: 'b-1.eu-west-1.kafka.managed.service', type: 'AAAA' });
  assert.match(kafka, /split zone: tenant "kafka-eu-west-1"/);
  assert.match(kafka, /answer: CNAME vpce-0a1b2c3d4e5f6a7b8-abcdefgh\.kafka\.eu-west-1\.vpce\.amazonaws\.com \(TTL 60\) then AAAA of .* via group default/);
  const stat = explain({ policy: ex('static-split.yaml'), name: 'x.db.internal.example', type: 'AAAA' });
  assert.match(stat, /answer: AAAA fd00:20::10 \(TTL 30\)/);
  assert.match(explain({ policy: ex('static-split.yaml'), name: 'db.internal.example', type: 'TXT' }), /NODATA/);
  assert.match(explain({ policy: ex('forward-zone.yaml'), name: 'git.corp.example.net' }), /answer: forwarded to zone corp \(corp\.example\.net\) via udp:\/\/10\.0\.0\.53:53, tcp:\/\/10\.0\.1\.53:53/);
  assert.match(explain({ name: 'kube-dns.kube-system.svc.cluster.local' }), /forwarded to the cluster DNS/);
  assert.match(explain({ name: 'example.org', type: 'mx' }), /query: example\.org MX\n.*\n.*\nanswer: allowed: forwarded to the default upstreams/);
  assert.throws(() => explain({ name: 'x.org', type: 'NOPE' }), /unknown query type/);
});
