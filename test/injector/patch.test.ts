import assert from 'node:assert/strict';
import { test } from 'node:test';
import jsonpatch from 'fast-json-patch';
import { applyPatch, escapePointerToken, PatchBuilder, pointer, unescapePointerToken } from '../../injector/patch.ts';

test('patch: pointer tokens escape ~ before / (RFC 6901)', () => {
  assert.equal(escapePointerToken('a/b~c'), 'a~1b~0c');
  assert.equal(escapePointerToken('~1'), '~01');
  assert.equal(unescapePointerToken('~01'), '~1');
  assert.equal(pointer(['metadata', 'annotations', 'tenant-dns.io/status']), '/metadata/annotations/tenant-dns.io~1status');
  assert.equal(pointer(['spec', 'containers', 0]), '/spec/containers/0');
});

test('patch: set adds missing parents first, then the value', () => {
  const b = new PatchBuilder({ spec: {} });
  b.set(['metadata', 'annotations', 'a/b'], 'x');
  assert.deepEqual(b.operations, [
    { op: 'add', path: '/metadata', value: {} },
    { op: 'add', path: '/metadata/annotations', value: {} },
    { op: 'add', path: '/metadata/annotations/a~1b', value: 'x' },
  ]);
  assert.deepEqual(b.doc, { spec: {}, metadata: { annotations: { 'a/b': 'x' } } });
});

test('patch: set of an equal value emits nothing; a different one replaces', () => {
  const b = new PatchBuilder({ spec: { dnsPolicy: 'None', x: { a: [1] } } });
  b.set(['spec', 'dnsPolicy'], 'None');
  b.set(['spec', 'x'], { a: [1] });
  assert.deepEqual(b.operations, []);
  b.set(['spec', 'dnsPolicy'], 'ClusterFirst');
  assert.deepEqual(b.operations, [{ op: 'replace', path: '/spec/dnsPolicy', value: 'ClusterFirst' }]);
});

test('patch: null parents are replaced by objects', () => {
  const b = new PatchBuilder({ metadata: { annotations: null } });
  b.set(['metadata', 'annotations', 'k'], 'v');
  assert.deepEqual(b.operations[0], { op: 'replace', path: '/metadata/annotations', value: {} });
  assert.deepEqual(b.doc, { metadata: { annotations: { k: 'v' } } });
});

test('patch: insert and append create a missing array, else add at an index or /-', () => {
  const b = new PatchBuilder({ spec: { containers: [{ name: 'a' }] } });
  b.insert(['spec', 'initContainers'], 0, { name: 'i' });
  b.insert(['spec', 'containers'], 0, { name: 'first' });
  b.append(['spec', 'volumes'], { name: 'v1' });
  b.append(['spec', 'volumes'], { name: 'v2' });
  assert.deepEqual(b.operations.map((o) => `${o.op} ${o.path}`), [
    'add /spec/initContainers',
    'add /spec/containers/0',
    'add /spec/volumes',
    'add /spec/volumes/-',
  ]);
  assert.deepEqual(b.doc, { spec: { containers: [{ name: 'first' }, { name: 'a' }], initContainers: [{ name: 'i' }], volumes: [{ name: 'v1' }, { name: 'v2' }] } });
});

test('patch: a non-object parent or non-array target is an error, not a bad patch', () => {
  assert.throws(() => new PatchBuilder({ spec: { securityContext: 'x' } }).set(['spec', 'securityContext', 'sysctls'], []), { code: 'PATCH_FAILED' });
  assert.throws(() => new PatchBuilder({ spec: { volumes: {} } }).append(['spec', 'volumes'], {}), { code: 'PATCH_FAILED' });
});

test('patch: the builder never mutates the original or the emitted values', () => {
  const original = { spec: { containers: [{ name: 'a' }] } };
  const frozen = JSON.stringify(original);
  const b = new PatchBuilder(original);
  const v = { name: 'x' };
  b.append(['spec', 'containers'], v);
  (v as { name: string }).name = 'changed';
  assert.equal(JSON.stringify(original), frozen);
  assert.deepEqual(b.operations[0], { op: 'add', path: '/spec/containers/-', value: { name: 'x' } });
});

test('patch: applyPatch agrees with fast-json-patch on add, replace, remove and test', () => {
  const doc = { a: { 'b/c': [1, 2], 'd~e': 'x' }, n: null };
  const ops = [
    { op: 'add', path: '/a/b~1c/1', value: 9 },
    { op: 'add', path: '/a/b~1c/-', value: 10 },
    { op: 'replace', path: '/a/d~0e', value: 'y' },
    { op: 'remove', path: '/n' },
    { op: 'test', path: '/a/d~0e', value: 'y' },
    { op: 'add', path: '/z', value: { q: 1 } },
  ] as const;
  const ours = applyPatch(structuredClone(doc), ops as never);
  const theirs = jsonpatch.applyPatch(structuredClone(doc), structuredClone(ops) as never, true).newDocument;
  assert.deepEqual(ours, theirs);
});

test('patch: applyPatch rejects bad pointers and failed tests', () => {
  assert.throws(() => applyPatch({}, [{ op: 'add', path: 'x', value: 1 }]), { code: 'PATCH_FAILED' });
  assert.throws(() => applyPatch({}, [{ op: 'add', path: '/a/b', value: 1 }]), /does not exist/);
  assert.throws(() => applyPatch({ a: [] }, [{ op: 'add', path: '/a/2', value: 1 }]), /out of range/);
  assert.throws(() => applyPatch({ a: 1 }, [{ op: 'test', path: '/a', value: 2 }]), /test at \/a failed/);
  assert.throws(() => applyPatch({ a: 1 }, [{ op: 'replace', path: '/b', value: 2 }]), /does not exist/);
});

test('patch: the working copy is copied on write: the original never changes, untouched subtrees are shared', () => {
  const original = {
    // A computed key makes an own `__proto__` property, as JSON.parse does.
    metadata: { annotations: { a: '1', ['__proto__']: 'kept' } as Record<string, string>, labels: { app: 'web' } },
    spec: { containers: [{ name: 'app', image: 'app:1', env: [{ name: 'X', value: '1' }] }], volumes: [{ name: 'data' }] },
  };
  const before = JSON.stringify(original);
  const b = new PatchBuilder(original);
  b.set(['metadata', 'annotations', 'tenant-dns.io/status'], '{}');
  b.set(['spec', 'containers', 0, 'image'], 'app:2');
  b.insert(['spec', 'initContainers'], 0, { name: 'tenant-dns' });
  assert.equal(JSON.stringify(original), before, 'the original is unchanged');
  const doc = b.doc as typeof original & { spec: { initContainers: unknown[] } };
  assert.deepEqual(Object.keys(doc.metadata.annotations), ['a', '__proto__', 'tenant-dns.io/status'], 'a __proto__ key is copied as data');
  assert.equal(doc.spec.containers[0]!.image, 'app:2');
  assert.deepEqual(doc.spec.initContainers, [{ name: 'tenant-dns' }]);
  assert.equal(doc.spec.volumes, original.spec.volumes, 'an untouched subtree is shared, not copied');
  assert.equal(doc.spec.containers[0]!.env, original.spec.containers[0]!.env);
  assert.equal(doc.metadata.labels, original.metadata.labels);
});
