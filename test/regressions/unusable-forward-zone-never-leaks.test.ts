/**
 * Regression (DNS correctness #8): a forward zone that cannot be used
 * leaked: when its upstreams could not be built (a plain DNS upstream given
 * by host name, say), its names went to the default upstreams. DESIGN §5: a
 * forward zone that cannot be used answers SERVFAIL; it never falls through
 * to the default upstreams.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildQuery, readReply } from '../helpers/dns-wire.ts';
import { sidecarBehind } from '../helpers/sidecar.ts';

test('names of a forward zone whose upstreams are unusable get SERVFAIL and never reach the default upstream', { todo: 'DNS correctness #8: unusable forward zone leaks' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-fwd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'policy.yaml'),
    'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata: { name: fwd }\nspec:\n  forwardZones:\n    - { name: corp, zones: ["corp.example"], upstreams: ["udp://dns.corp.invalid:53"] }\n',
  );
  const { udp, upstream } = await sidecarBehind(t, undefined, { policy: join(dir, 'policy.yaml') });
  const r = readReply(await udp.query(buildQuery({ name: 'intranet.corp.example', type: 'A', edns: {} })));
  assert.equal(r.rcode, 2, 'SERVFAIL');
  assert.deepEqual(r.answer, []);
  assert.equal(upstream.counts.total, 0, 'the default upstream never saw the corporate name');
});
