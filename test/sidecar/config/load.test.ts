import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { ConfigInvalidError, loadYamlFile, parseYaml } from '../../../sidecar/config/load.ts';
import { DNSPolicySchema, POLICY_CAPS, checkPolicy, globProblem } from '../../../sidecar/config/policy-schema.ts';
import { SidecarError } from '../../../sidecar/errors.ts';

function problems(text: string): string[] {
  try {
    parseYaml(text, 'p.yaml', DNSPolicySchema, checkPolicy);
  } catch (err) {
    assert.ok(err instanceof ConfigInvalidError);
    assert.equal(err.code, 'CONFIG_INVALID');
    assert.equal(err.message, err.problems.map((p) => `${p.file}:${p.line}: ${p.field}: ${p.message}`).join('\n'));
    return err.message.split('\n');
  }
  return [];
}

const HEAD = 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata:\n  name: t\n';

test('load: defaults are applied and the result is frozen', () => {
  const p = parseYaml(HEAD + 'spec:\n  splitZones:\n    - {name: s, names: [a.test], addresses: [10.0.0.1]}\n', 'p.yaml', DNSPolicySchema, checkPolicy);
  assert.equal(p.spec.defaultAction, 'allow');
  assert.deepEqual(p.spec.rules, []);
  assert.equal(p.spec.splitZones[0]!.ttl, 60);
  assert.equal(p.spec.splitZones[0]!.resolveVia, 'default');
  assert.ok(Object.isFrozen(p) && Object.isFrozen(p.spec.splitZones[0]));
  const q = parseYaml(HEAD, 'p.yaml', DNSPolicySchema, checkPolicy);
  assert.deepEqual(q.spec, { rules: [], defaultAction: 'allow', splitZones: [], forwardZones: [] });
});

test('load: a wrong enum value names the file, line and field path', () => {
  const text = HEAD + 'spec:\n  rules:\n    - name: r\n      action: block\n      names: [a.test]\n';
  assert.deepEqual(problems(text), ['p.yaml:8: spec.rules[0].action: must be one of "allow", "deny", "log"']);
});

test('load: every problem is listed, an unknown field and a missing one too', () => {
  const text = HEAD + 'spec:\n  rules:\n    - name: r\n      action: deny\n      nmes: [a.test]\n  defaultAction: maybe\n';
  assert.deepEqual(problems(text), [
    'p.yaml:7: spec.rules[0].names: is required',
    'p.yaml:9: spec.rules[0].nmes: is not a known field',
    'p.yaml:10: spec.defaultAction: must be one of "allow", "deny"',
  ]);
});

test('load: a missing top-level field points at the document', () => {
  assert.deepEqual(problems('apiVersion: tenant-dns.io/v1\nmetadata: {name: x}\n'), [
    'p.yaml:1: kind: is required',
    'p.yaml:1: apiVersion: must be "tenant-dns.io/v1alpha1"',
  ]);
});

test('load: glob syntax is checked with a clear message at the glob line', () => {
  const globs = ['"*"', '"**.example.com"', '"a..b"', '"a.*.com"', '"*."', '"bad label!.com"'];
  const text = HEAD + 'spec:\n  rules:\n    - name: r\n      action: deny\n      names:\n' + globs.map((g) => `        - ${g}\n`).join('');
  const out = problems(text);
  assert.equal(out.length, globs.length);
  out.forEach((line, i) => assert.match(line, new RegExp(`^p\\.yaml:${10 + i}: spec\\.rules\\[0\\]\\.names\\[${i}\\]: `)));
  assert.match(out[0]!, /"\*" alone matches every name/);
  assert.match(out[1]!, /"\*\*" is not supported/);
  assert.match(out[2]!, /empty label/);
  assert.match(out[3]!, /only allowed first/);
  assert.equal(globProblem('*.example.com'), undefined);
  assert.equal(globProblem('ads-*.example.com.'), undefined);
});

test('load: semantic checks (duplicate names, sinkhole, cname and addresses, resolveVia)', () => {
  const text =
    HEAD +
    [
      'spec:',
      '  rules:',
      '    - {name: r, action: deny, names: [a.test], response: {type: sinkhole}}',
      '    - {name: r, action: allow, names: [b.test]}',
      '    - {name: q, action: deny, names: [c.test], response: {type: sinkhole, addresses: [not-an-ip]}}',
      '  splitZones:',
      '    - {name: s, names: [d.test], cname: x.test, addresses: [10.0.0.1]}',
      '    - {name: t, names: [e.test]}',
      '    - {name: u, names: [f.test], cname: y.test, resolveVia: nowhere}',
      '',
    ].join('\n');
  assert.deepEqual(problems(text), [
    'p.yaml:7: spec.rules[0].response.addresses: a sinkhole response needs addresses',
    'p.yaml:8: spec.rules[1].name: duplicate rule name "r" (also rules[0])',
    'p.yaml:9: spec.rules[2].response.addresses[0]: "not-an-ip" is not an IPv4 or IPv6 address',
    'p.yaml:11: spec.splitZones[0].cname: give either cname or addresses, not both',
    'p.yaml:12: spec.splitZones[1]: a split zone needs cname or addresses',
    'p.yaml:13: spec.splitZones[2].resolveVia: "nowhere" is neither "default", "cluster" nor a forward zone of this policy',
  ]);
});

test('load: YAML syntax errors and empty files are CONFIG_INVALID with a line', () => {
  const out = problems(HEAD + 'spec:\n  rules: [\n');
  assert.equal(out.length >= 1, true);
  assert.match(out[0]!, /^p\.yaml:\d+: \(document\): YAML syntax: /);
  assert.deepEqual(problems(''), ['p.yaml:1: (document): the file is empty']);
  assert.match(problems('a: 1\na: 2\n')[0]!, /YAML syntax/);
});

test('load: unreadable files are CONFIG_READ with the fs error as cause', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tdns-load-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, 'missing.yaml');
  assert.throws(
    () => loadYamlFile(missing, DNSPolicySchema),
    (err: unknown) => err instanceof SidecarError && err.code === 'CONFIG_READ' && err.message.includes(missing) && (err.cause as NodeJS.ErrnoException).code === 'ENOENT',
  );
  if (process.getuid?.() !== 0) {
    const locked = join(dir, 'locked.yaml');
    writeFileSync(locked, HEAD);
    chmodSync(locked, 0o000);
    assert.throws(() => loadYamlFile(locked, DNSPolicySchema), (err: unknown) => err instanceof SidecarError && err.code === 'CONFIG_READ' && (err.cause as NodeJS.ErrnoException).code === 'EACCES');
  }
});

test('load: works for any schema (the sidecar --config)', () => {
  const S = Type.Object({ port: Type.Integer({ minimum: 1, default: 53 }), name: Type.String() }, { additionalProperties: false });
  assert.deepEqual(parseYaml('name: x\n', 'c.yaml', S), { port: 53, name: 'x' });
  assert.throws(() => parseYaml('name: x\nport: 0\n', 'c.yaml', S), /^SidecarError: c\.yaml:2: port: expected integer to be greater or equal to 1$/m);
});

test('load: an unquoted glob starting with * gets a hint instead of an alias error', () => {
  const text = HEAD + 'spec:\n  rules:\n    - name: r\n      action: deny\n      names:\n        - *.com\n';
  assert.deepEqual(problems(text), ['p.yaml:10: (document): YAML reads *.com as an alias: quote a glob that starts with "*" ("*.com")']);
});

test('load: one glob in two split zones is fine when both answer alike; a zone in two forward zones is not', () => {
  const text =
    HEAD +
    'spec:\n' +
    '  splitZones:\n' +
    '    - { name: a, names: ["*.x.test"], addresses: ["10.0.0.1", "fd00::1"] }\n' +
    '    - { name: b, names: ["*.X.test."], addresses: ["fd00::1", "10.0.0.1"] }\n' +
    '  forwardZones:\n' +
    '    - { name: f1, zones: [corp.test], upstreams: ["udp://192.0.2.1"] }\n' +
    '    - { name: f2, zones: [Corp.Test.], upstreams: ["udp://192.0.2.2"] }\n';
  assert.deepEqual(problems(text), ['p.yaml:11: spec.forwardZones[1].zones[0]: "Corp.Test." is also a zone of forward zone "f1" (forwardZones[0]): only one of them could ever be used']);
});

test('load: empty documents around the one document do not count; only empty documents are an empty file', () => {
  const text = HEAD + 'spec: {}\n';
  assert.deepEqual(problems(`---\n${text}---\n`), []);
  assert.deepEqual(problems('---\n---\n'), ['p.yaml:1: (document): the file is empty']);
});

test('load: a value of the wrong shape is reported by the schema while the checks look at the rest', () => {
  const text = HEAD + 'spec:\n  rules: "deny everything"\n  splitZones:\n    - { name: s, names: ["a..test"], addresses: ["10.0.0.1"] }\n';
  assert.deepEqual(problems(text), ['p.yaml:6: spec.rules: expected array', 'p.yaml:8: spec.splitZones[0].names[0]: empty label in "a..test"']);
});

test('load: the caps on rules, split zones, forward zones and upstreams are policy problems with file, line and field', () => {
  const rule = (i: number) => `    - {name: r${i}, action: deny, names: [r${i}.test]}\n`;
  const split = (i: number) => `    - {name: s${i}, names: [s${i}.test], addresses: [10.0.0.1]}\n`;
  const forward = (i: number, upstreams: string[]) => `    - {name: f${i}, zones: [f${i}.test], upstreams: [${upstreams.join(', ')}]}\n`;
  const spec = (key: string, items: string[]) => `${HEAD}spec:\n  ${key}:\n${items.join('')}`;
  const { rules, splitZones, forwardZones, upstreamsPerZone, upstreams } = POLICY_CAPS;
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);

  // At each cap: valid.
  assert.deepEqual(problems(spec('rules', range(rules).map(rule))), []);
  assert.deepEqual(problems(spec('splitZones', range(splitZones).map(split))), []);
  const ip = (i: number) => `udp://10.0.${Math.floor(i / 250)}.${(i % 250) + 1}:53`;
  assert.deepEqual(problems(spec('forwardZones', range(forwardZones).map((i) => forward(i, [ip(i % upstreams)])))), []);
  // Past each: one problem naming the list, at the list's line.
  assert.deepEqual(problems(spec('rules', range(rules + 1).map(rule))), [`p.yaml:7: spec.rules: holds ${rules + 1} entries, more than the ${rules} allowed`]);
  assert.deepEqual(problems(spec('splitZones', range(splitZones + 1).map(split))), [`p.yaml:7: spec.splitZones: holds ${splitZones + 1} entries, more than the ${splitZones} allowed`]);
  assert.deepEqual(problems(spec('forwardZones', range(forwardZones + 1).map((i) => forward(i, [ip(0)])))), [
    `p.yaml:7: spec.forwardZones: holds ${forwardZones + 1} entries, more than the ${forwardZones} allowed`,
  ]);
  assert.deepEqual(problems(spec('forwardZones', [forward(0, range(upstreamsPerZone + 1).map(ip))])), [
    `p.yaml:7: spec.forwardZones[0].upstreams: holds ${upstreamsPerZone + 1} entries, more than the ${upstreamsPerZone} allowed`,
  ]);
  // Distinct upstreams count by scheme, host and port (the metric label): the same server under another path or with options is one.
  const same = ['"https://10.0.0.1/a"', '"https://10.0.0.1:443/b?x=1"', '"https://10.0.0.1#tls-name=dns.test"'];
  assert.deepEqual(problems(spec('forwardZones', range(upstreams - 1).map((i) => forward(i, [ip(i)])).concat(forward(upstreams, same)))), []);
  assert.deepEqual(problems(spec('forwardZones', range(upstreams + 1).map((i) => forward(i, [ip(i)])))), [
    `p.yaml:${7 + upstreams}: spec.forwardZones[${upstreams}].upstreams[0]: the forward zones name more than ${upstreams} distinct upstreams (scheme, host and port; each has its own metric series): share upstreams between zones`,
  ]);
});

test('load: a problem with an upstream URL names it without its user info, path or query', () => {
  const text = `${HEAD}spec:\n  forwardZones:\n    - name: corp\n      zones: [corp.test]\n      upstreams: ["https://us3r:pa55@10.0.0.1/profile-s3cr3t?api_key=k3y#tls-name=x"]\n`;
  assert.deepEqual(problems(text), [
    `p.yaml:9: spec.forwardZones[0].upstreams[0]: "https://10.0.0.1:443" cannot be used (credentials are not allowed): the zone's names would be answered SERVFAIL`,
  ]);
});
