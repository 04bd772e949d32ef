import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import { registerInjectorCommands } from '../../injector/cli.ts';
import { parseInjectorConfig } from '../../injector/config.ts';
import { injectManifests, runInjectCommand, sidecarStartProblem, TEMPLATE_PATHS } from '../../injector/inject-cli.ts';
import { Env, Keys, SIDECAR_NAME } from '../../injector/names.ts';
import { validateK8sObject } from '../helpers/k8s-schema.ts';

const FILE = join(import.meta.dirname, 'testdata', 'workloads.yaml');
/** workloads.yaml has a hostNetwork DaemonSet and an opted-out pod: a platform that allows both. */
const config = parseInjectorConfig({ clusterDns: '10.96.0.10:53', optOut: 'allow', hostNetworkPods: 'allow' });
const CONFIG_YAML = 'clusterDns: 10.96.0.10:53\noptOut: allow\nhostNetworkPods: allow\n';
/** The platform's defaults plus the one setting the sidecar cannot start without: somewhere to forward. */
const KUBE_DNS_ONLY = 'clusterDns: 10.96.0.10:53\n';

/** Runs `fn` with an injector config file holding `text`. */
function withConfig<T>(text: string, fn: (path: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'tenant-dns-cfg-'));
  try {
    writeFileSync(join(dir, 'c.yaml'), text);
    return fn(join(dir, 'c.yaml'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

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
  // Every pod template carries its tenant label, so the pods created from it do.
  assert.equal(templateOf(docs.find((d) => d.metadata?.name === 'deploy')).metadata.labels['tenant-dns.io/tenant'], 'team-a');
});

test('inject: a workload the webhook would deny is an error naming the conflict: exit 1, nothing on stdout', () => {
  const err: string[] = [];
  const clash = [
    'apiVersion: v1\nkind: Pod\nmetadata: { name: ok }\nspec:\n  containers: [{ name: app, image: nginx }]',
    'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: own-dns, namespace: team-a }\nspec:\n  selector: { matchLabels: { app: x } }\n  template:\n    metadata: { labels: { app: x } }\n    spec:\n      dnsPolicy: None\n      dnsConfig: { nameservers: [8.8.8.8] }\n      initContainers: [{ name: tenant-dns, image: registry.example/dns:1, restartPolicy: Always }]\n      containers: [{ name: app, image: nginx }]',
  ].join('\n---\n');
  const io = { readStdin: () => clash, stdout: () => assert.fail('no output expected'), stderr: (s: string) => err.push(s) };
  withConfig(KUBE_DNS_ONLY, (cfg) => assert.equal(runInjectCommand({ filename: '-', config: cfg }, io), 1));
  const text = err.join('');
  assert.match(text, /^tenant-dns inject: denied Deployment team-a\/own-dns: foreign-sidecar \(container tenant-dns is not the injector's: it differs in image \(registry\.example\/dns:1;/m);
  assert.match(text, /own nameservers 8\.8\.8\.8/);
  assert.match(text, /1 workload would be denied by the injector; nothing written/);
  // With the platform's defaults, the hostNetwork DaemonSet and the opted-out pod of workloads.yaml are denied too.
  const err2: string[] = [];
  withConfig(KUBE_DNS_ONLY, (cfg) => assert.equal(runInjectCommand({ filename: FILE, config: cfg }, { ...io, stderr: (s) => err2.push(s) }), 1));
  assert.match(err2.join(''), /denied DaemonSet node-exporter: host-network/);
  assert.match(err2.join(''), /denied Pod listed-opt-out: opt-out-not-allowed/);
});

test('inject: --tenant must be a label value, since the pod is labelled with it', () => {
  const err: string[] = [];
  const io = { readStdin: () => '', stdout: () => assert.fail('no output expected'), stderr: (s: string) => err.push(s) };
  withConfig(KUBE_DNS_ONLY, (cfg) => assert.equal(runInjectCommand({ filename: FILE, tenant: 'acme corp', config: cfg }, io), 1));
  assert.match(err.join(''), /--tenant "acme corp": a tenant is a label value/);
});

test('inject: injecting the output again changes nothing', () => {
  const once = injectManifests(readFileSync(FILE, 'utf8'), { config });
  const twice = injectManifests(once.output, { config });
  assert.equal(twice.output, once.output);
  assert.ok(twice.events.every((e) => e.result === 'skipped'));
  assert.ok(twice.events.some((e) => e.reason === 'already-injected'));
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
  withConfig(CONFIG_YAML, (cfg) => {
    assert.equal(runInjectCommand({ filename: '-', config: cfg }, io), 0);
    assert.equal(parseAllDocuments(out.join('')).length, 10);
    assert.match(err.join(''), /skipped DaemonSet node-exporter: host-network \(pod uses hostNetwork\)/);
    assert.match(err.join(''), /skipped Service svc: not-a-workload/);
    const out2: string[] = [];
    assert.equal(runInjectCommand({ filename: FILE, config: cfg }, { ...io, stdout: (s) => out2.push(s) }), 0);
    assert.equal(out2.join(''), out.join(''));
  });
});

test('inject: a config that gives the sidecar nowhere to forward is an error naming the settings, not a pod that cannot start', () => {
  const err: string[] = [];
  const io = { readStdin: () => readFileSync(FILE, 'utf8'), stdout: () => assert.fail('no output expected'), stderr: (s: string) => err.push(s) };
  // No config: no upstreams and no clusterDns.
  assert.equal(runInjectCommand({ filename: '-' }, io), 1);
  assert.match(err[0]!, /^tenant-dns inject: default injector config: the injector config gives the sidecar nowhere to forward: set upstreams \(default upstream URLs\) or clusterDns/);
  // An upstream that is the sidecar's own address: the sidecar's loop check, mirrored.
  withConfig('upstreams: [udp://127.0.0.1:53]\n', (cfg) => assert.equal(runInjectCommand({ filename: '-', config: cfg }, io), 1));
  assert.match(err[1]!, /the sidecar would not start with the injector config: --upstream 127\.0\.0\.1:53 is the sidecar's own listen address 127\.0\.0\.1:53/);
  // Either setting alone is enough.
  assert.equal(sidecarStartProblem(parseInjectorConfig({ clusterDns: '10.96.0.10:53' })), undefined);
  assert.equal(sidecarStartProblem(parseInjectorConfig({ upstreams: ['https://doh.example.net/dns-query'], bootstrap: ['doh.example.net=192.0.2.1'] })), undefined);
});

test('inject: bad YAML, a missing file or a bad config exit 1 with a message', () => {
  const err: string[] = [];
  const io = { readStdin: () => 'a: [\n', stdout: () => assert.fail('no output expected'), stderr: (s: string) => err.push(s) };
  withConfig(KUBE_DNS_ONLY, (cfg) => {
    assert.equal(runInjectCommand({ filename: '-', config: cfg }, io), 1);
    assert.equal(runInjectCommand({ filename: '/nonexistent.yaml', config: cfg }, io), 1);
  });
  withConfig('failureMode: sometimes\n', (cfg) => assert.equal(runInjectCommand({ filename: FILE, config: cfg }, io), 1));
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
    writeFileSync(join(dir, 'c.yaml'), CONFIG_YAML);
    await program.parseAsync(['node', 'tenant-dns', 'inject', '-f', FILE, '--config', join(dir, 'c.yaml'), '-o', join(dir, 'out.yaml'), '--tenant', 'acme']);
    assert.match(readFileSync(join(dir, 'out.yaml'), 'utf8'), /TENANT_DNS_TENANT\n\s+value: acme/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
