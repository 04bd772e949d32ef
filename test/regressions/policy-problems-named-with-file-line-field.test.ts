/**
 * Regression (DNS correctness #9, the loader's part): policy files with
 * mistakes the loader let through or reported badly. Two split zones with
 * the same glob and different answers were accepted (the first silently
 * won); a forward zone for the cluster domain was accepted and never used
 * (cluster names always go to the cluster DNS); a multi-document file was
 * reported in the YAML library's words ("use YAML.parseAllDocuments()"); a
 * missing file was reported at line 0; a schema error hid the semantic
 * errors of the same file. Each is now a clear problem naming the file, the
 * line and the field.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ConfigInvalidError } from '../../sidecar/config/load.ts';
import { clusterZones } from '../../sidecar/config/cluster.ts';
import { validateFiles } from '../../sidecar/policy/cli.ts';
import { loadPolicyFile, PolicyManager } from '../../sidecar/policy/manager.ts';
import { startTestSidecar, type TestSidecar } from '../helpers/sidecar.ts';

const HEAD = 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata:\n  name: t\nspec:\n';

function dir(t: test.TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'tenant-dns-policy-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** The problems loading `text` from a file reports, one `file:line: field: message` string each. */
function problems(t: test.TestContext, text: string, options?: { clusterZones?: readonly string[] }): { file: string; lines: string[] } {
  const file = join(dir(t), 'policy.yaml');
  writeFileSync(file, text);
  try {
    loadPolicyFile(file, options);
  } catch (err) {
    assert.ok(err instanceof ConfigInvalidError, String(err));
    return { file, lines: err.message.split('\n') };
  }
  return { file, lines: [] };
}

test('two split zones with one glob and different answers: an error at the second glob', (t) => {
  const { file, lines } = problems(
    t,
    HEAD +
      '  splitZones:\n' +
      '    - { name: a, names: ["*.kafka.example"], cname: vpce-a.example }\n' +
      '    - name: b\n' +
      '      names: ["db.example", "*.Kafka.example."]\n' +
      '      cname: vpce-b.example\n' +
      '    - { name: c, names: ["*.kafka.example"], cname: vpce-a.example }\n',
  );
  assert.deepEqual(lines, [
    `${file}:9: spec.splitZones[1].names[1]: "*.Kafka.example." is also a name of split zone "a" (splitZones[0]), which answers it another way: only one of them could ever answer`,
  ]);
});

test('a forward zone inside the cluster zone: an error, as the cluster DNS always answers those names', (t) => {
  const text = HEAD + '  forwardZones:\n    - name: corp\n      zones: ["corp.example", "svc.Cluster.Local."]\n      upstreams: ["udp://192.0.2.53"]\n';
  const zones = clusterZones('cluster.local', ['in-addr.arpa', 'ip6.arpa']);
  const { file, lines } = problems(t, text, { clusterZones: zones });
  assert.deepEqual(lines, [
    `${file}:8: spec.forwardZones[0].zones[1]: "svc.Cluster.Local." lies in the cluster zone cluster.local, whose names always go to the cluster DNS: this forward zone would never be used`,
  ]);
  // The manager, which the sidecar loads its policy with, checks it too.
  assert.throws(() => new PolicyManager({ policy: file, clusterZones: zones, watch: false }), (err: unknown) => err instanceof ConfigInvalidError && err.message === lines[0]);
});

test(
  'the sidecar refuses to start with a forward zone inside its cluster zone',
  async (t) => {
    const file = join(dir(t), 'policy.yaml');
    writeFileSync(file, HEAD + '  forwardZones:\n    - { name: k8s, zones: ["svc.cluster.local"], upstreams: ["udp://192.0.2.53"] }\n');
    let started: TestSidecar | undefined;
    t.after(async () => started?.stop());
    const start = startTestSidecar({ upstream: ['udp://192.0.2.1:53'], policy: file }).then((sc) => (started = sc));
    await assert.rejects(start, (err: unknown) => err instanceof ConfigInvalidError && /lies in the cluster zone cluster\.local/.test(err.message));
  },
);

test('a file with two YAML documents: the loader says so in its own words, at the second document', (t) => {
  const { file, lines } = problems(t, HEAD + '  rules: []\n---\n' + HEAD + '  rules: []\n');
  assert.deepEqual(lines, [`${file}:7: (document): the file holds 2 YAML documents; it must hold exactly one (the second starts here)`]);
});

test('a missing file: named, with no line of its own, the cause kept', (t) => {
  const missing = join(dir(t), 'missing.yaml');
  assert.throws(
    () => loadPolicyFile(missing),
    (err: unknown) => err instanceof ConfigInvalidError && err.code === 'CONFIG_READ' && err.message === `${missing}: (file): cannot be read: no such file` && (err.cause as NodeJS.ErrnoException).code === 'ENOENT',
  );
  const r = validateFiles([missing]);
  assert.equal(r.output, `${missing}: (file): cannot be read: no such file\n`);
  assert.equal(r.exitCode, 1);
});

test('a schema error and a semantic error in one file: both are reported', (t) => {
  const { file, lines } = problems(
    t,
    HEAD +
      '  defaultAction: maybe\n' +
      '  rules:\n' +
      '    - { name: r1, action: deny, names: ["a..example"] }\n' +
      '    - { name: r1, action: allow, names: ["b.example"] }\n' +
      '  splitZones:\n' +
      '    - { name: s, names: ["c.example"], cname: x.example, addresses: ["10.0.0.1"] }\n',
  );
  assert.deepEqual(lines, [
    `${file}:6: spec.defaultAction: must be one of "allow", "deny"`,
    `${file}:8: spec.rules[0].names[0]: empty label in "a..example"`,
    `${file}:9: spec.rules[1].name: duplicate rule name "r1" (also rules[0])`,
    `${file}:11: spec.splitZones[0].cname: give either cname or addresses, not both`,
  ]);
});
