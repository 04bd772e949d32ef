import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import { registerInjectorCommands } from '../../injector/cli.ts';
import { parseInjectorConfig } from '../../injector/config.ts';
import { injectManifests, runInjectCommand, TEMPLATE_PATHS } from '../../injector/inject-cli.ts';
import { Env, Keys, SIDECAR_NAME } from '../../injector/names.ts';
import { validateK8sObject } from '../helpers/k8s-schema.ts';

const FILE = join(import.meta.dirname, 'testdata', 'workloads.yaml');
const config = parseInjectorConfig({ clusterDns: '10.96.0.10:53' });

function templateOf(o: any): any {
  let cur = o;
  for (const seg of TEMPLATE_PATHS[o.kind] ?? []) cur = cur[seg];
  return cur;
}

test('inject: multi-document YAML with every workload kind', () => {
  const report = injectManifests(readFileSync(FILE, 'utf8'), { config, namespace: 'team-a' });
  const docs = parseAllDocuments(report.output).map((d) => d.toJS());
  assert.deepEqual(docs.map((d) => d.kind), ['Pod', 'Deployment', 'StatefulSet', 'DaemonSet', 'DaemonSet', 'ReplicaSet', 'Job', 'CronJob', 'List', 'Service']);
  for (const d of docs) {
    if (d.kind === 'List') for (const i of d.items) validateK8sObject(i);
    else validateK8sObject(d);
  }
  const injected = (o: any) => templateOf(o).spec.initContainers?.[0]?.name === SIDECAR_NAME;
  for (const name of ['pod', 'deploy', 'sts', 'ds', 'rs', 'job', 'cron']) {
    assert.ok(injected(docs.find((d) => d.metadata?.name === name)), name);
  }
  assert.ok(!injected(docs.find((d) => d.metadata?.name === 'node-exporter')));
  const list = docs.find((d) => d.kind === 'List');
  assert.ok(injected(list.items[0]));
  assert.ok(!injected(list.items[1]));
  // The namespace in the object wins over --namespace; objects without one take it.
  const sts = templateOf(docs.find((d) => d.metadata?.name === 'sts'));
  assert.equal(sts.spec.dnsConfig.searches[0], 'team-b.svc.cluster.local');
  assert.equal(templateOf(docs.find((d) => d.metadata?.name === 'deploy')).spec.dnsConfig.searches[0], 'team-a.svc.cluster.local');
  // Status annotation on the template, so every pod carries it.
  assert.ok(templateOf(docs.find((d) => d.metadata?.name === 'cron')).metadata.annotations[Keys.status]);
  const skipped = report.events.filter((e) => e.result === 'skipped').map((e) => `${e.ref}: ${e.reason}`);
  assert.deepEqual(skipped, ['DaemonSet node-exporter: host-network', 'Pod listed-opt-out: opted-out', 'Service svc: not-a-workload']);
});

test('inject: injecting the output again changes nothing', () => {
  const once = injectManifests(readFileSync(FILE, 'utf8'), { config });
  const twice = injectManifests(once.output, { config });
  assert.equal(twice.output, once.output);
  assert.ok(twice.events.every((e) => e.result === 'skipped'));
});

test('inject: --tenant sets the tenant; JSON input works too', () => {
  const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'a', image: 'b' }] } };
  const out = injectManifests(JSON.stringify(pod), { config, tenant: 'acme' });
  const doc = parseAllDocuments(out.output)[0].toJS();
  assert.deepEqual(doc.spec.initContainers[0].env.find((e: any) => e.name === Env.tenant), { name: 'TENANT_DNS_TENANT', value: 'acme' });
});

test('inject: the command reads a file or stdin, prints YAML to stdout and skips to stderr', () => {
  const out: string[] = [];
  const err: string[] = [];
  const io = { readStdin: () => readFileSync(FILE, 'utf8'), stdout: (s: string) => out.push(s), stderr: (s: string) => err.push(s) };
  assert.equal(runInjectCommand({ filename: '-' }, io), 0);
  assert.equal(parseAllDocuments(out.join('')).length, 10);
  assert.match(err.join(''), /skipped DaemonSet node-exporter: host-network \(pod uses hostNetwork\)/);
  assert.match(err.join(''), /skipped Service svc: not-a-workload/);
  const out2: string[] = [];
  assert.equal(runInjectCommand({ filename: FILE }, { ...io, stdout: (s) => out2.push(s) }), 0);
  assert.equal(out2.join(''), out.join(''));
});

test('inject: bad YAML, a missing file or a bad config exit 1 with a message', () => {
  const err: string[] = [];
  const io = { readStdin: () => 'a: [\n', stdout: () => assert.fail('no output expected'), stderr: (s: string) => err.push(s) };
  assert.equal(runInjectCommand({ filename: '-' }, io), 1);
  assert.equal(runInjectCommand({ filename: '/nonexistent.yaml' }, io), 1);
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-cfg-'));
  try {
    writeFileSync(join(dir, 'c.yaml'), 'failureMode: sometimes\n');
    assert.equal(runInjectCommand({ filename: FILE, config: join(dir, 'c.yaml') }, io), 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(err.length, 3);
  assert.match(err[2], /\/failureMode \(line 1\)/);
});

test('cli: registerInjectorCommands adds injector and inject with their options', async () => {
  const program = new Command('tenant-dns').exitOverride();
  registerInjectorCommands(program);
  const injector = program.commands.find((c) => c.name() === 'injector');
  const inject = program.commands.find((c) => c.name() === 'inject');
  assert.ok(injector && inject);
  for (const flag of ['--listen', '--tls-cert', '--tls-key', '--config', '--no-namespace-lookup', '--max-body-bytes']) {
    assert.ok(injector.options.some((o) => o.long === flag), flag);
  }
  for (const flag of ['--filename', '--config', '--namespace', '--tenant', '--output']) assert.ok(inject.options.some((o) => o.long === flag), flag);
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-out-'));
  try {
    await program.parseAsync(['node', 'tenant-dns', 'inject', '-f', FILE, '-o', join(dir, 'out.yaml'), '--tenant', 'acme']);
    assert.match(readFileSync(join(dir, 'out.yaml'), 'utf8'), /TENANT_DNS_TENANT\n\s+value: acme/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
