import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PolicyManager, parsePodLabels, unquoteGo, type PolicyLogger } from '../../../sidecar/policy/manager.ts';
import { evaluate } from '../../../sidecar/policy/evaluate.ts';
import { SidecarError } from '../../../sidecar/errors.ts';

const ROOT = join(import.meta.dirname, '../../..');
const HEAD = 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata:\n  name: t\n';
const denying = (name: string) => `${HEAD}spec:\n  rules:\n    - {name: r, action: deny, names: [${name}]}\n`;

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tdns-policy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function capture(): { log: PolicyLogger; lines: [string, string, Record<string, unknown> | undefined][] } {
  const lines: [string, string, Record<string, unknown> | undefined][] = [];
  return { lines, log: (level, msg, fields) => lines.push([level, msg, fields]) };
}

/** Resolves with the next reload result, or rejects after `ms`. */
function nextReload(m: PolicyManager, ms = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error('no reload within ' + ms + ' ms'));
    }, ms);
    const off = m.onReload((result) => {
      clearTimeout(timer);
      off();
      resolve(result);
    });
  });
}

const action = (m: PolicyManager, name: string) => evaluate(m.current, name).decision.action;

test('manager: without files the policy is empty (default allow)', () => {
  const m = new PolicyManager({ watch: false });
  assert.equal(action(m, 'anything.example'), 'allow');
  m.close();
});

test('manager: a missing or invalid file at start throws', (t) => {
  const dir = tempDir(t);
  assert.throws(() => new PolicyManager({ policy: join(dir, 'nope.yaml'), watch: false }), (e: unknown) => e instanceof SidecarError && e.code === 'CONFIG_READ');
  writeFileSync(join(dir, 'bad.yaml'), HEAD + 'spec:\n  defaultAction: nope\n');
  assert.throws(() => new PolicyManager({ policy: join(dir, 'bad.yaml'), watch: false }), (e: unknown) => e instanceof SidecarError && e.code === 'CONFIG_INVALID' && /bad\.yaml:6: spec\.defaultAction/.test(e.message));
  assert.throws(() => new PolicyManager({ podLabels: join(dir, 'labels'), watch: false }), (e: unknown) => e instanceof SidecarError && e.code === 'CONFIG_READ');
});

test('manager: reload() swaps in a valid policy and keeps the last good one on an invalid file', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, denying('a.test'));
  let clock = 1_000;
  const { log, lines } = capture();
  const m = new PolicyManager({ policy: file, watch: false, log, now: () => clock });
  t.after(() => m.close());
  const results: string[] = [];
  m.onReload((r, err) => results.push(err ? `${r}:${err.code}` : r));
  assert.equal(action(m, 'a.test'), 'deny');
  assert.equal(m.lastGoodAt, 1_000);

  clock = 2_000;
  writeFileSync(file, denying('b.test'));
  assert.deepEqual(m.reload(), { ok: true });
  assert.equal(action(m, 'a.test'), 'allow');
  assert.equal(action(m, 'b.test'), 'deny');
  assert.equal(m.lastGoodAt, 2_000);

  clock = 3_000;
  writeFileSync(file, HEAD + 'spec:\n  rules:\n    - {name: r, action: deny, names: ["a..b"]}\n');
  const bad = m.reload();
  assert.equal(bad.ok, false);
  assert.equal(bad.error?.code, 'CONFIG_INVALID');
  assert.equal(action(m, 'b.test'), 'deny', 'the last good policy keeps serving');
  assert.equal(m.lastGoodAt, 2_000);
  assert.deepEqual(results, ['success', 'failure:CONFIG_INVALID']);
  const warns = lines.filter(([level]) => level === 'warn');
  assert.equal(warns.length, 1);
  assert.match(String(warns[0]![2]!.error), /policy\.yaml:7: spec\.rules\[0\]\.names\[0\]: empty label/);
  assert.ok(!String(warns[0]![2]!.error).includes('\n'), 'one line');

  rmSync(file);
  assert.equal(m.reload().error?.code, 'CONFIG_READ');
  assert.equal(action(m, 'b.test'), 'deny');
});

test('manager: pod labels select rules', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'policy.yaml'), `${HEAD}spec:\n  rules:\n    - {name: fe, action: deny, names: ["*.com"], podSelector: {matchLabels: {app: frontend}}}\n`);
  writeFileSync(join(dir, 'labels'), 'app="frontend"\npod-template-hash="7d9c"\n');
  const m = new PolicyManager({ policy: join(dir, 'policy.yaml'), podLabels: join(dir, 'labels'), watch: false });
  assert.equal(action(m, 'x.com'), 'deny');
  writeFileSync(join(dir, 'labels'), 'app="backend"\n');
  m.reload();
  assert.equal(action(m, 'x.com'), 'allow');
  m.close();
});

test('manager: a Kubernetes ConfigMap ..data symlink swap is seen and reloaded', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, '..2026_01_01_00_00_00.1'));
  writeFileSync(join(dir, '..2026_01_01_00_00_00.1', 'policy.yaml'), denying('old.test'));
  symlinkSync('..2026_01_01_00_00_00.1', join(dir, '..data'));
  symlinkSync('..data/policy.yaml', join(dir, 'policy.yaml'));
  const { log } = capture();
  const m = new PolicyManager({ policy: join(dir, 'policy.yaml'), log, debounceMs: 20 });
  t.after(() => m.close());
  assert.equal(action(m, 'old.test'), 'deny');

  const seen = nextReload(m);
  mkdirSync(join(dir, '..2026_01_01_00_01_00.2'));
  writeFileSync(join(dir, '..2026_01_01_00_01_00.2', 'policy.yaml'), denying('new.test'));
  symlinkSync('..2026_01_01_00_01_00.2', join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  rmSync(join(dir, '..2026_01_01_00_00_00.1'), { recursive: true });
  assert.equal(await seen, 'success');
  assert.equal(action(m, 'new.test'), 'deny');
  assert.equal(action(m, 'old.test'), 'allow');
});

test('manager: an in-place edit is reloaded; an invalid edit keeps the last good policy', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, denying('one.test'));
  const { log, lines } = capture();
  const m = new PolicyManager({ policy: file, log, debounceMs: 20 });
  t.after(() => m.close());
  let seen = nextReload(m);
  writeFileSync(file, denying('two.test'));
  assert.equal(await seen, 'success');
  assert.equal(action(m, 'two.test'), 'deny');

  seen = nextReload(m);
  writeFileSync(file, 'spec: [unclosed\n');
  assert.equal(await seen, 'failure');
  assert.equal(action(m, 'two.test'), 'deny');
  assert.equal(lines.filter(([l]) => l === 'warn').length, 1);
});

test('manager: with policyOptional a missing tenant file is no tenant policy, logged once; the file is loaded when it appears and dropped when it goes', async (t) => {
  const dir = tempDir(t); // the empty directory the kubelet mounts for an optional ConfigMap that does not exist
  const platform = join(tempDir(t), 'platform.yaml');
  writeFileSync(platform, denying('platform.test'));
  const file = join(dir, 'policy.yaml');
  const { log, lines } = capture();
  const m = new PolicyManager({ policy: file, policyOptional: true, platformPolicy: platform, log, debounceMs: 20 });
  t.after(() => m.close());
  assert.equal(action(m, 'platform.test'), 'deny', 'the platform layer applies');
  assert.equal(action(m, 'tenant.test'), 'allow', 'no tenant rule');
  const absent = () => lines.filter(([, msg]) => /no tenant policy file/.test(msg));
  assert.deepEqual(absent().map(([level, , f]) => [level, f?.file]), [['info', file]]);

  // The ConfigMap is created: the kubelet writes a timestamped directory and swaps ..data in.
  let seen = nextReload(m);
  mkdirSync(join(dir, '..2026_01_01_00_00_00.1'));
  writeFileSync(join(dir, '..2026_01_01_00_00_00.1', 'policy.yaml'), denying('tenant.test'));
  symlinkSync('..2026_01_01_00_00_00.1', join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  symlinkSync('..data/policy.yaml', file);
  assert.equal(await seen, 'success');
  assert.equal(action(m, 'tenant.test'), 'deny', 'the tenant file is loaded once it appears');
  assert.equal(action(m, 'platform.test'), 'deny');

  // The ConfigMap is deleted: no tenant policy again, said once (a warning: a policy that served went away).
  seen = nextReload(m);
  rmSync(file);
  assert.equal(await seen, 'success');
  assert.equal(action(m, 'tenant.test'), 'allow');
  assert.equal(action(m, 'platform.test'), 'deny');
  assert.deepEqual(absent().map(([level]) => level), ['info', 'warn']);
  // Another change in the directory that leaves the file absent: the same policy, nothing logged again.
  rmSync(join(dir, '..data'));
  assert.deepEqual(m.reload(), { ok: true });
  assert.equal(absent().length, 2);
  assert.equal(lines.filter(([level]) => level === 'warn').length, 1, 'no reload failure logged');
});

test('manager: policyOptional forgives only a missing file: an invalid or unreadable one is still an error', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'bad.yaml'), HEAD + 'spec:\n  defaultAction: nope\n');
  assert.throws(() => new PolicyManager({ policy: join(dir, 'bad.yaml'), policyOptional: true, watch: false }), (e: unknown) => e instanceof SidecarError && e.code === 'CONFIG_INVALID');
  assert.throws(() => new PolicyManager({ policy: dir, policyOptional: true, watch: false }), (e: unknown) => e instanceof SidecarError && e.code === 'CONFIG_READ' && /a directory/.test(e.message));
});

test('manager: without policyOptional a tenant file that goes away keeps the last good policy', (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, denying('tenant.test'));
  const m = new PolicyManager({ policy: file, watch: false });
  t.after(() => m.close());
  rmSync(file);
  const r = m.reload();
  assert.equal(r.error?.code, 'CONFIG_READ');
  assert.match(r.error!.message, /policy\.yaml: \(file\): cannot be read: no such file/);
  assert.equal(action(m, 'tenant.test'), 'deny');
});

test('manager: with policyOptional and a directory that does not exist, the sidecar starts and a reload loads the file', (t) => {
  const parent = tempDir(t);
  const file = join(parent, 'later', 'policy.yaml');
  const { log, lines } = capture();
  const m = new PolicyManager({ policy: file, policyOptional: true, log });
  t.after(() => m.close());
  assert.ok(lines.some(([level, msg, f]) => level === 'warn' && /watch failed/.test(msg) && f?.dir === join(parent, 'later')), 'the watch failure is said');
  mkdirSync(join(parent, 'later'));
  writeFileSync(file, denying('tenant.test'));
  assert.deepEqual(m.reload(), { ok: true });
  assert.equal(action(m, 'tenant.test'), 'deny');
});

test('manager: close() stops watching', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, denying('one.test'));
  const m = new PolicyManager({ policy: file, debounceMs: 10 });
  m.close();
  m.close();
  let reloads = 0;
  m.onReload(() => reloads++);
  // A manager still watching the same file, started after the closed one with the same debounce: were the
  // closed one still watching, its reload would come first (same events, timers of one length in order).
  const witness = new PolicyManager({ policy: file, debounceMs: 10 });
  t.after(() => witness.close());
  const witnessed = nextReload(witness);
  writeFileSync(file, denying('two.test'));
  assert.equal(await witnessed, 'success');
  assert.equal(reloads, 0);
  assert.equal(action(m, 'one.test'), 'deny');
});

test('pod labels: the downward API format with Go escapes', () => {
  assert.deepEqual(parsePodLabels('app="frontend"\n\nnote="say \\"hi\\"\\n\\tok\\\\"\nuni="caf\\u00e9 \\xc3\\xa9"\nempty=""\n', 'labels'), {
    app: 'frontend',
    note: 'say "hi"\n\tok\\',
    uni: 'café é',
    empty: '',
  });
  assert.equal(unquoteGo('"\\101\\U0001F600"'), 'A😀');
  assert.throws(() => parsePodLabels('app=frontend\n', 'labels'), /labels:1: /);
  assert.throws(() => parsePodLabels('ok="1"\nbroken\n', 'labels'), /labels:2: /);
});

/** A manager of one policy file holding `text`, not watching it yet (as the sidecar constructs it). */
function unwatched(t: { after: (fn: () => void) => void }, text: string) {
  const file = join(tempDir(t), 'policy.yaml');
  writeFileSync(file, text);
  const { log, lines } = capture();
  const m = new PolicyManager({ policy: file, log, debounceMs: 20, watch: false });
  t.after(() => m.close());
  return { file, m, lines };
}

test('manager: watching started after the load (the sidecar starts it once its listeners serve) still sees an edit made in between', async (t) => {
  const { file, m, lines } = unwatched(t, denying('before.test'));
  // The edit lands before the watch exists: no file event will ever report it.
  writeFileSync(file, denying('between.test'));
  const seen = nextReload(m);
  m.watchFiles();
  assert.equal(await seen, 'success');
  assert.equal(action(m, 'between.test'), 'deny');
  assert.equal(action(m, 'before.test'), 'allow');
  // And later edits are seen through the watch.
  const again = nextReload(m);
  writeFileSync(file, denying('after.test'));
  assert.equal(await again, 'success');
  assert.equal(action(m, 'after.test'), 'deny');
  assert.equal(lines.filter(([, msg]) => msg === 'policy reloaded').length, 2);
});

test('manager: watching started after the load reloads nothing when the files did not change', async (t) => {
  const { file, m, lines } = unwatched(t, denying('same.test'));
  let reloads = 0;
  m.onReload(() => reloads++);
  m.watchFiles();
  m.watchFiles(); // once only
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(reloads, 0);
  assert.deepEqual(lines, []);
  const seen = nextReload(m);
  writeFileSync(file, denying('changed.test'));
  assert.equal(await seen, 'success');
  assert.equal(action(m, 'changed.test'), 'deny');
});

test('manager: a file that cannot be read twice (a pipe, as a shell\'s <(…) gives) is not read again when the watch starts', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'policy.yaml'), `${HEAD}spec:\n  rules:\n    - {name: fe, action: deny, names: ["*.com"], podSelector: {matchLabels: {app: frontend}}}\n`);
  const fifo = join(dir, 'labels');
  execFileSync('mkfifo', [fifo]);
  // In a child process: reading the pipe again with no writer blocks its thread for good, which only a
  // timeout from outside can end.
  const script = [
    "import { spawn } from 'node:child_process';",
    "import { PolicyManager } from './sidecar/policy/manager.ts';",
    "import { evaluate } from './sidecar/policy/evaluate.ts';",
    // A writer of its own that writes once and exits, as `echo` behind `<(echo …)` does.
    `spawn('sh', ${JSON.stringify(['-c', 'printf "%s\\n" "$1" > "$0"', fifo, 'app="frontend"'])}, { stdio: 'ignore' });`,
    'const reloads = [];',
    `const m = new PolicyManager({ policy: ${JSON.stringify(join(dir, 'policy.yaml'))}, podLabels: ${JSON.stringify(fifo)}, debounceMs: 20, watch: false, log: (l, msg) => reloads.push(msg) });`,
    "const before = evaluate(m.current, 'x.com').decision.action;",
    'm.watchFiles();',
    "setTimeout(() => { console.log(JSON.stringify([before, evaluate(m.current, 'x.com').decision.action, reloads])); m.close(); }, 300);",
  ].join('\n');
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', timeout: 15_000 });
  // Read again, the pipe gives nothing: the labels, and the rule they select, would be gone after a reload.
  assert.deepEqual(JSON.parse(out), ['deny', 'deny', []]);
});
