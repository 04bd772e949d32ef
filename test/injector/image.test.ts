/**
 * Dockerfile.sidecar without a Docker engine: its structure is checked, and
 * the bundle is built with the same script the Dockerfile runs
 * (deploy/scripts/bundle.sh, into a temp dir) and run the way the image's
 * ENTRYPOINT runs it: `sidecar --help`, `injector --help`, `inject -f`, and
 * the injector serving HTTPS until SIGTERM.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, after, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { buildBundle, imageEntrypoint, imageEnvAt } from '../helpers/image.ts';
import { makeTestPki } from '../helpers/k8s-certs.ts';
import { validateK8sObject } from '../helpers/k8s-schema.ts';
import { queryUdp } from '../helpers/dns-client.ts';
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

test('image: the bundle starts from the compile cache bundle.sh filled, and does not write to it', () => {
  const files = () => readdirSync(join(out, 'cache'), { recursive: true }).sort();
  const before = files();
  assert.ok(before.length > 1, `cache filled: ${before.join(', ')}`);
  // Node says what it does with the cache on stderr when NODE_DEBUG_NATIVE=COMPILE_CACHE.
  const r = spawnSync(process.execPath, [...image.nodeFlags, bundle, 'sidecar', '--help'], { cwd: tmpdir(), env: { ...imageEnv(), NODE_DEBUG_NATIVE: 'COMPILE_CACHE' }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /V8 code cache for ESM file:\/\/\S+\/dist\/tenant-dns\.mjs was accepted/, r.stderr);
  assert.doesNotMatch(r.stderr, /was rejected|failed/i, r.stderr);
  assert.deepEqual(files(), before);
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

test('image: the bundled sidecar forwards over DoH (the undici chunk loads on demand) and over DoT', async (t) => {
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
