/**
 * Dockerfile.sidecar without a Docker engine: its structure is checked, and
 * the bundle is built with the same script the Dockerfile runs
 * (deploy/scripts/bundle.sh, into a temp dir) and run the way the image's
 * ENTRYPOINT runs it: `sidecar --help`, `injector --help`, `inject -f`, and
 * the injector serving HTTPS until SIGTERM.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, after, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { buildBundle, imageEntrypoint, imageEnvAt } from '../helpers/image.ts';
import { makeTestPki } from '../helpers/k8s-certs.ts';
import { validateK8sObject } from '../helpers/k8s-schema.ts';
import { queryUdp } from '../helpers/dns-client.ts';
import { podNodeOptions } from '../helpers/peers.ts';
import { freePort } from '../helpers/ports.ts';
import { spawnServing } from '../helpers/sidecar.ts';
import { testPki } from '../helpers/tls.ts';
import { startUnbound, unboundTlsConfig } from '../helpers/unbound.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const dockerfile = readFileSync(join(ROOT, 'Dockerfile.sidecar'), 'utf8');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
let out = '';
let bundle = '';

before(() => {
  out = mkdtempSync(join(tmpdir(), 'tenant-dns-bundle-'));
  buildBundle(out);
  bundle = join(out, 'dist', 'tenant-dns.mjs');
});
after(() => rmSync(out, { recursive: true, force: true }));

/** How the image starts the bundle: its node flags and the runtime stage's ENV. */
const image = imageEntrypoint();
/** The environment of a container of the image: this process's plus the runtime stage's ENV. */
const imageEnv = () => ({ ...process.env, ...imageEnvAt(image, out) });

/** Runs the bundle as the image does: `node FLAGS /app/dist/tenant-dns.mjs ARGS`, from an unrelated cwd. */
const run = (args: string[], input?: string) => execFileSync(process.execPath, [...image.nodeFlags, bundle, ...args], { cwd: tmpdir(), env: imageEnv(), encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });

test('image: Dockerfile is multi-stage, installs with the lockfile and runs the bundle as non-root', () => {
  const froms = [...dockerfile.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gim)];
  assert.ok(froms.length >= 2, 'multi-stage');
  const nodeMajor = /^\^?~?(\d+)\./.exec(pkg.devDependencies.node)![1];
  const argVersion = /^ARG NODE_VERSION=(\d+)/m.exec(dockerfile)?.[1];
  assert.equal(argVersion, nodeMajor, 'runtime Node major = package.json devDependency node');
  for (const [, image] of froms) assert.match(image, /^node:\$\{NODE_VERSION\}-/);
  assert.match(dockerfile, /COPY package\.json package-lock\.json/);
  assert.match(dockerfile, /RUN npm ci\b/);
  assert.match(dockerfile, /RUN sh deploy\/scripts\/bundle\.sh \/out/);
  assert.match(dockerfile, /^COPY --from=build(?: --\S+)* \/out\/ \/app\/$/m);
  const user = /^USER\s+(\d+)(?::(\d+))?\s*$/m.exec(dockerfile);
  assert.ok(user && Number(user[1]) !== 0, 'numeric non-root USER');
  assert.equal(image.script, '/app/dist/tenant-dns.mjs', 'ENTRYPOINT runs what bundle.sh writes under /app');
  assert.equal(image.env.MALLOC_ARENA_MAX, '1', 'one malloc arena (peak RSS, test/bench/README.md)');
  assert.equal(image.env.NODE_COMPILE_CACHE, '/app/cache', 'the compile cache bundle.sh fills (start-up, test/bench/README.md)');
});

test('image: the CLI starts from the compile cache bundle.sh filled, and does not write to it', () => {
  const files = () => readdirSync(join(out, 'cache'), { recursive: true }).sort();
  const before = files();
  assert.ok(before.length > 2, `cache filled: ${before.join(', ')}`);
  // Node says what it does with the cache on stderr when NODE_DEBUG_NATIVE=COMPILE_CACHE.
  const r = spawnSync(process.execPath, [...image.nodeFlags, bundle, 'policy', '--help'], { cwd: tmpdir(), env: { ...imageEnv(), NODE_DEBUG_NATIVE: 'COMPILE_CACHE' }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /V8 code cache for ESM file:\/\/\S+\/dist\/tenant-dns\.mjs was accepted/, r.stderr);
  assert.match(r.stderr, /V8 code cache for ESM file:\/\/\S+\/dist\/cli\.mjs was accepted/, r.stderr);
  assert.match(r.stderr, /V8 code cache for ESM file:\/\/\S+\/dist\/chunk-\S+\.mjs was accepted/, r.stderr);
  assert.doesNotMatch(r.stderr, /was rejected|failed/i, r.stderr);
  assert.deepEqual(files(), before);
});

/** A policy that denies *.denied.test: the sidecar answers those names itself (NXDOMAIN), nothing is forwarded. */
function denyPolicy(dir: string): string {
  const file = join(dir, 'deny-policy.yaml');
  writeFileSync(file, 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata:\n  name: image-test\nspec:\n  rules:\n    - name: deny-test\n      action: deny\n      names: ["*.denied.test"]\n');
  return file;
}

/** Starts `sidecar` from the bundle in `app` (a bundle.sh OUTDIR) as a pod does, asks it for a denied name, and returns its "sidecar serving" fields. */
async function servedFromBundle(app: string, env: NodeJS.ProcessEnv = {}): Promise<Record<string, unknown>> {
  const sc = await spawnServing(['sidecar', '--policy', denyPolicy(app), '--upstream', 'udp://127.0.0.1:9', '--metrics', '127.0.0.1:0', '--admin', '127.0.0.1:0'], {
    entry: [...image.nodeFlags, join(app, 'dist', 'tenant-dns.mjs')],
    spawn: { cwd: tmpdir(), env: { ...process.env, ...imageEnvAt(image, app), ...env } },
  });
  try {
    const r = await queryUdp('127.0.0.1', sc.port, { name: 'www.denied.test', type: 'A' }, 5000);
    assert.equal(r.rcode, 'NXDOMAIN', sc.stderr());
    return JSON.parse(sc.stderr().split('\n').find((l) => l.includes('"msg":"sidecar serving"'))!) as Record<string, unknown>;
  } finally {
    await sc.kill();
  }
}

test('image: `sidecar` runs from dist/sidecar.cjs with the code cache bundle.sh took from a warm start, and does not write to it', async () => {
  const cache = join(out, 'cache', 'sidecar.v8');
  const before = readFileSync(cache);
  assert.ok(before.length > 100_000, `a cache of the start-up's compiled code: ${before.length} bytes`);
  // With and without the injector's NODE_OPTIONS (V8 rejects a cache made under other flags; heap sizes do not count).
  for (const env of [{}, { NODE_OPTIONS: podNodeOptions().join(' ') }]) {
    const serving = await servedFromBundle(out, env);
    assert.equal(serving.codeCache, 'used', JSON.stringify(env));
  }
  assert.deepEqual(readFileSync(cache), before);
  assert.deepEqual(readdirSync(join(out, 'cache')).filter((f) => f.endsWith('.partial')), []);
  // The entry is the one ES module the sidecar loads: every module more costs start-up (test/bench/README.md).
  const r = spawnSync(process.execPath, [...image.nodeFlags, bundle, 'sidecar', '--help'], { cwd: tmpdir(), env: { ...imageEnv(), NODE_DEBUG_NATIVE: 'COMPILE_CACHE' }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const modules = [...new Set([...r.stderr.matchAll(/V8 code cache for ESM file:\/\/\S+\/dist\/(\S+\.mjs)/g)].map((m) => m[1]))];
  assert.deepEqual(modules, ['tenant-dns.mjs'], r.stderr);
});

test('image: the bundled sidecar serves without its code cache, or with one V8 rejects, and says so', async (t) => {
  const app = mkdtempSync(join(tmpdir(), 'tenant-dns-bundle-copy-'));
  t.after(() => rmSync(app, { recursive: true, force: true }));
  cpSync(out, app, { recursive: true });
  const cache = join(app, 'cache', 'sidecar.v8');
  // Another Node's cache, or a damaged one: V8 checks its header and sizes and compiles the code as usual.
  const damaged = readFileSync(cache);
  damaged.fill(0x5a, 0, 64);
  writeFileSync(cache, damaged);
  assert.equal((await servedFromBundle(app)).codeCache, 'rejected');
  rmSync(cache);
  assert.equal((await servedFromBundle(app)).codeCache, 'absent');
});

test('image: sidecar --help, its errors and --version from the bundle are those of the whole CLI', () => {
  const fromSource = execFileSync(process.execPath, [join(ROOT, 'bin', 'tenant-dns.ts'), 'sidecar', '--help'], { encoding: 'utf8' });
  assert.equal(run(['sidecar', '--help']), fromSource);
  const r = spawnSync(process.execPath, [...image.nodeFlags, bundle, 'sidecar', '--no-such-flag'], { cwd: tmpdir(), env: imageEnv(), encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /error: unknown option '--no-such-flag'/);
  assert.equal(run(['sidecar', '--version']).trim(), pkg.version);
});

test('image: the bundled sidecar refuses an invalid policy with its file and line (js-yaml and yaml, required from dist/vendor on demand)', () => {
  const bad = join(out, 'bad-sidecar-policy.yaml');
  writeFileSync(bad, 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata:\n  name: t\nspec:\n  rules:\n    - name: r\n      action: block\n      names: [a.test]\n');
  const r = spawnSync(process.execPath, [...image.nodeFlags, bundle, 'sidecar', '--listen', '127.0.0.1:0', '--policy', bad, '--metrics', '127.0.0.1:0', '--admin', '127.0.0.1:0'], { cwd: tmpdir(), env: imageEnv(), encoding: 'utf8', timeout: 15_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:8: spec\\.rules\\[0\\]\\.action: must be one of`), r.stderr);
});

test('image: .dockerignore lets in exactly what the Dockerfile copies', () => {
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  assert.equal(ignore[0], '*', 'allow-list');
  const allowed = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
  const sources = [...dockerfile.matchAll(/^COPY\s+(?!--from)(.+)$/gm)].flatMap((m) => m[1].trim().split(/\s+/).slice(0, -1));
  for (const s of sources) {
    assert.ok(allowed.includes(s.replace(/\/$/, '')), `${s} is copied but ignored`);
    assert.ok(existsSync(join(ROOT, s)), `${s} exists`);
  }
});

test('image: the build stage bundles from exactly what the Dockerfile copies into it', (t) => {
  // The build context is the COPY lines (.dockerignore allows no more): a source the bundle imports but no
  // COPY brings in fails the image build, not a test that bundles from the whole repository.
  const ctx = mkdtempSync(join(tmpdir(), 'tenant-dns-build-context-'));
  t.after(() => rmSync(ctx, { recursive: true, force: true }));
  const build = dockerfile.slice(0, dockerfile.search(/^FROM .* AS runtime$/m));
  for (const m of build.matchAll(/^COPY\s+(?!--from)(.+)$/gm)) {
    const parts = m[1]!.trim().split(/\s+/);
    for (const src of parts.slice(0, -1)) cpSync(join(ROOT, src), join(ctx, src), { recursive: true });
  }
  symlinkSync(join(ROOT, 'node_modules'), join(ctx, 'node_modules'));
  const r = spawnSync('sh', ['deploy/scripts/bundle.sh', join(ctx, 'out')], { cwd: ctx, env: { ...process.env, NODE: process.execPath }, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(existsSync(join(ctx, 'out', 'cache', 'sidecar.v8')), 'the warm start made the code cache');
});

test('image: the bundle answers --version, sidecar --help and injector --help', () => {
  assert.equal(run(['--version']).trim(), pkg.version);
  assert.match(run(['sidecar', '--help']), /--cluster-dns/);
  const help = run(['injector', '--help']);
  for (const flag of ['--tls-cert', '--tls-key', '--listen', '--config']) assert.match(help, new RegExp(flag));
  assert.match(run(['inject', '--help']), /--filename/);
});

test('image: the bundle validates a policy on the quick path and reports an invalid one with its line (yaml loaded on demand)', () => {
  const examples = join(import.meta.dirname, '../../examples');
  run(['policy', 'validate', join(examples, 'frontend-deny-com.yaml')]);
  const bad = join(out, 'bad-policy.yaml');
  writeFileSync(bad, 'apiVersion: tenant-dns.io/v1alpha1\nkind: DNSPolicy\nmetadata:\n  name: t\nspec:\n  rules:\n    - name: r\n      action: block\n      names: [a.test]\n');
  const r = spawnSync(process.execPath, [...image.nodeFlags, bundle, 'policy', 'validate', bad], { cwd: tmpdir(), env: imageEnv(), encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stdout + r.stderr, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:8: spec\\.rules\\[0\\]\\.action: must be one of "allow", "deny", "log"`));
});

test('image: the runtime stage has Debian nftables for capture, and the bundle prints the capture rules (its chunk loads on demand)', () => {
  const runtime = dockerfile.slice(dockerfile.search(/^FROM .* AS runtime$/m));
  assert.match(runtime, /apt-get install -y --no-install-recommends nftables\b/);
  assert.match(runtime, /rm -rf \/var\/lib\/apt\/lists\/\*/);
  const script = run(['capture', '--dry-run', '--redirect-to=127.0.0.1:53']);
  assert.match(script, /^table inet tenant-dns-capture$/m);
  assert.match(script, /meta nfproto ipv4 udp dport 53 dnat ip to 127\.0\.0\.1:53/);
});

test('image: inject from the bundle turns manifests on stdin into valid injected manifests', () => {
  // workloads.yaml has a hostNetwork DaemonSet and an opted-out pod, which the default config denies; the
  // sidecar needs somewhere to forward (kube-dns here), or inject refuses the config.
  const config = join(out, 'injector.yaml');
  writeFileSync(config, 'clusterDns: 10.96.0.10:53\noptOut: allow\nhostNetworkPods: allow\n');
  const outYaml = run(['inject', '-f', '-', '--namespace', 'team-a', '--config', config], readFileSync(join(import.meta.dirname, 'testdata', 'workloads.yaml'), 'utf8'));
  const docs = parseAllDocuments(outYaml).map((d) => d.toJS());
  assert.equal(docs.length, 10);
  const deploy = docs.find((d) => d.kind === 'Deployment');
  validateK8sObject(deploy);
  assert.equal(deploy.spec.template.spec.initContainers[0].name, 'tenant-dns');
});

test('image: the injector from the bundle serves HTTPS and exits 0 on SIGTERM', async (t) => {
  const pki = makeTestPki(['localhost']);
  t.after(() => pki.cleanup());
  const child = spawn(process.execPath, [...image.nodeFlags, bundle, 'injector', '--listen', '127.0.0.1:0', '--tls-cert', pki.certFile, '--tls-key', pki.keyFile, '--no-namespace-lookup'], { cwd: tmpdir(), env: imageEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let stderr = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /"msg":"injector listening"[^\n]*"port":(\d+)/.exec(stderr);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`injector exited ${code}: ${stderr}`)));
  });
  const status = await new Promise<number>((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, path: '/readyz', ca: pki.ca, servername: 'localhost', agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
  assert.equal(status, 200);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
});

test('image: the bundled sidecar forwards over DoH (undici, required from dist/vendor on demand) and over DoT', async (t) => {
  const tls = testPki();
  const [tlsPort, httpsPort] = [await freePort(), await freePort()];
  const ub = await startUnbound([{ name: 'image.test', records: ['www.image.test. 60 IN A 192.0.2.77'] }], unboundTlsConfig(tlsPort, httpsPort, tls.good));
  t.after(() => ub.stop());
  const doh = `https://dns.test:${httpsPort}/dns-query`;
  const dot = `tls://dns.test:${tlsPort}`;
  for (const upstream of [doh, dot]) {
    const sc = await spawnServing(['sidecar', '--upstream', upstream, '--upstream-ca', tls.caFile, '--bootstrap', 'dns.test=127.0.0.1'], { entry: [...image.nodeFlags, bundle], spawn: { cwd: tmpdir(), env: imageEnv() } });
    try {
      const r = await queryUdp('127.0.0.1', sc.port, { name: 'www.image.test', type: 'A' }, 5000);
      assert.deepEqual(r.answers.map((a) => a.data), ['192.0.2.77'], `${upstream}: ${sc.stderr()}`);
    } finally {
      await sc.kill();
    }
  }
});
