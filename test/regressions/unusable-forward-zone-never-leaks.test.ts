/**
 * Regression (DNS correctness #8): a forward zone that cannot be used
 * leaked: when its upstreams could not be built (a tls:// upstream named by
 * a host with no bootstrap address, which only the sidecar's config can give
 * and so no policy validation can see), its names went to the default
 * upstreams. DESIGN §5: a forward zone that cannot be used answers SERVFAIL
 * (EDE naming the zone); it never falls through to the default upstreams.
 * Readiness and a metric show it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildQuery, readReply } from '../helpers/dns-wire.ts';
import { sidecarBehind } from '../helpers/sidecar.ts';
import { validateFiles } from '../../sidecar/policy/cli.ts';

test('names of a forward zone whose upstreams are unusable get SERVFAIL and never reach the default upstream', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-fwd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'policy.yaml'),
    'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: { name: fwd }\nspec:\n  forwardZones:\n    - { name: corp, zones: ["corp.example"], upstreams: ["tls://dns.corp.invalid:853"] }\n',
  );
  const { sc, udp, upstream } = await sidecarBehind(t, undefined, { policy: join(dir, "policy.yaml") });
  const r = readReply(await udp.query(buildQuery({ name: 'intranet.corp.example', type: 'A', edns: {} })));
  assert.equal(r.rcode, 2, 'SERVFAIL');
  assert.deepEqual(r.answer, []);
  assert.equal(upstream.counts.total, 0, 'the default upstream never saw the corporate name');
  const registry = sc.sidecar.telemetry.registry;
  assert.match(await registry.getSingleMetricAsString('tenant_dns_upstream_groups_unusable'), /tenant_dns_upstream_groups_unusable\{tenant="default"\} 1/);
  const ready = await fetch(`http://${sc.sidecar.telemetry.adminAddress!.host}:${sc.sidecar.telemetry.adminAddress!.port}/readyz`);
  assert.equal(ready.status, 503);
  assert.match(await ready.text(), /group corp: upstreams unusable: .*dns\.corp\.invalid.*bootstrap/);
});

test('policy validate names an upstream of a shape that can never work, with file, line and field', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-fwd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'policy.yaml');
  writeFileSync(
    file,
    'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: { name: fwd }\nspec:\n  forwardZones:\n    - name: corp\n      zones: ["corp.example"]\n      upstreams:\n        - "udp://10.0.0.53:70000"\n        - "udp://dns.corp.example:53"\n',
  );
  const r = validateFiles([file]);
  assert.equal(r.exitCode, 1);
  assert.deepEqual(r.output.trimEnd().split('\n'), [
    `${file}:9: spec.forwardZones[0].upstreams[0]: "udp://10.0.0.53:70000" cannot be used (bad port 70000): the zone's names would be answered SERVFAIL`,
    `${file}:10: spec.forwardZones[0].upstreams[1]: "udp://dns.corp.example:53" cannot be used (plain DNS upstreams need an IP address, not a host name): the zone's names would be answered SERVFAIL`,
  ]);
});
