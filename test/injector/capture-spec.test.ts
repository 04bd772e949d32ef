/**
 * `capture: init`: the injector adds the DNS capture init container before the
 * sidecar, with flags `tenant-dns capture` accepts, the sidecar's own uid and
 * listen address, and root with NET_ADMIN and NET_RAW only. The container
 * running in a pod: test/pod/capture.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { captureContainer } from '../../injector/capture-spec.ts';
import { parseInjectorConfig, parseInjectorConfigYaml } from '../../injector/config.ts';
import { InjectorError } from '../../injector/errors.ts';
import { mutatePod } from '../../injector/mutate.ts';
import { CAPTURE_NAME, Keys, SIDECAR_NAME } from '../../injector/names.ts';
import { CAPTURE_FLAGS, redirectTargets, sidecarUid } from '../../sidecar/capture/rules.ts';
import { samplePod } from './fixtures.ts';

const BASE = { clusterDns: '10.96.0.10:53' };

function inject(config: Record<string, unknown>, pod: Record<string, any> = samplePod()) {
  return mutatePod(pod, { namespace: 'team-a', tenant: 'team-a', operation: 'CREATE', config: parseInjectorConfig({ ...BASE, ...config }) });
}

/** The value of `--flag=value` in args. */
function flag(args: readonly string[], name: string): string | undefined {
  return args.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
}

test('capture-spec: the default is none: no init container besides the sidecar', () => {
  assert.equal(parseInjectorConfig({}).capture, 'none');
  const spec = inject({}).patched.spec as Record<string, any>;
  assert.deepEqual(spec.initContainers.map((c: { name: string }) => c.name), [SIDECAR_NAME]);
});

test('capture-spec: init puts tenant-dns-capture first, then the sidecar, then the pod own init containers; the status names both', () => {
  const pod = samplePod();
  pod.spec.initContainers = [{ name: 'migrate', image: 'registry.example/migrate:1' }];
  const r = inject({ capture: 'init' }, pod);
  const patched = r.patched as Record<string, any>;
  assert.deepEqual(patched.spec.initContainers.map((c: { name: string }) => c.name), [CAPTURE_NAME, SIDECAR_NAME, 'migrate']);
  assert.equal(patched.spec.initContainers[0].restartPolicy, undefined, 'runs to completion before the sidecar starts');
  assert.deepEqual(JSON.parse(patched.metadata.annotations[Keys.status]).containers, [CAPTURE_NAME, SIDECAR_NAME]);
  // Legacy mode: the sidecar is a regular container; capture is still an init container.
  const legacy = inject({ capture: 'init', nativeSidecar: false }).patched as Record<string, any>;
  assert.deepEqual(legacy.spec.initContainers.map((c: { name: string }) => c.name), [CAPTURE_NAME]);
  assert.equal(legacy.spec.containers[0].name, SIDECAR_NAME);
});

test('capture-spec: args are flags of tenant-dns capture naming the sidecar uid and listen address', () => {
  for (const listen of ['127.0.0.1:53', '[::1]:53', '127.0.0.1:5353']) {
    const patched = inject({ capture: 'init', listen }).patched as Record<string, any>;
    const [capture, sidecar] = patched.spec.initContainers as { args: string[]; securityContext: { runAsUser: number } }[];
    assert.equal(capture!.args[0], 'capture');
    const known = new Set<string>(Object.values(CAPTURE_FLAGS));
    for (const a of capture!.args.slice(1)) assert.ok(known.has(a.slice(0, a.indexOf('='))), `${a} is not a capture flag`);
    assert.equal(sidecarUid(flag(capture!.args, CAPTURE_FLAGS.sidecarUid)!), sidecar!.securityContext.runAsUser, 'the uid left alone is the one the sidecar runs as');
    assert.equal(flag(capture!.args, CAPTURE_FLAGS.redirectTo), listen);
    assert.equal(flag(sidecar!.args, '--listen'), listen, 'captured queries go where the sidecar listens');
    redirectTargets([flag(capture!.args, CAPTURE_FLAGS.redirectTo)!]);
  }
});

test('capture-spec: root with NET_ADMIN and NET_RAW only, no escalation, read-only root filesystem', () => {
  const c = captureContainer(parseInjectorConfig({ capture: 'init' })) as Record<string, any>;
  assert.deepEqual(c.securityContext, {
    runAsUser: 0,
    runAsNonRoot: false,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  });
  assert.equal(c.image, parseInjectorConfig({}).image, 'the same image as the sidecar');
  assert.ok(c.resources.limits.memory, 'a memory limit, for namespaces with a ResourceQuota');
});

test('capture-spec: a pod that already has a container named tenant-dns-capture is denied, naming it, with or without capture', () => {
  for (const field of ['containers', 'initContainers', 'ephemeralContainers']) {
    const pod = samplePod();
    pod.spec[field] = [...(pod.spec[field] ?? []), { name: CAPTURE_NAME, image: 'busybox:1.36' }];
    for (const config of [{ capture: 'init' as const }, {}]) {
      const r = inject(config, pod);
      assert.equal(r.decision.outcome, 'deny', `${field} ${JSON.stringify(config)}`);
      assert.ok(r.decision.outcome === 'deny' && r.decision.reason === 'name-conflict' && r.decision.detail.includes(CAPTURE_NAME));
      assert.deepEqual(r.patch, [], 'nothing is injected half-way');
    }
  }
});

test('capture-spec: config accepts none and init only, naming the field', () => {
  assert.equal(parseInjectorConfigYaml('capture: init\n').capture, 'init');
  assert.throws(() => parseInjectorConfigYaml('capture: always\n', 'cfg.yaml'), (err: Error & { code?: string }) => err.code === 'CONFIG_INVALID' && /cfg\.yaml: \/capture \(line 1\)/.test(err.message));
});

test('capture-spec: an injected pod with capture passes a second time unchanged; a changed or moved capture container is denied', () => {
  const first = inject({ capture: 'init' });
  assert.equal(first.decision.outcome, 'inject');
  const again = inject({ capture: 'init' }, structuredClone(first.patched));
  assert.equal(again.decision.outcome, 'skip');
  assert.deepEqual(again.patch, [], 'reinvocation is a fixed point');
  const widened = structuredClone(first.patched) as Record<string, any>;
  widened.spec.initContainers[0].securityContext.capabilities.add.push('SYS_ADMIN');
  const r = inject({ capture: 'init' }, widened);
  assert.ok(r.decision.outcome === 'deny' && r.decision.detail.includes(CAPTURE_NAME), 'a capture container with more capabilities is not the injector\'s');
  const dropped = structuredClone(first.patched) as Record<string, any>;
  dropped.spec.initContainers.shift();
  assert.equal(inject({ capture: 'init' }, dropped).decision.outcome, 'deny', 'the sidecar without its capture container is not the injection');
  assert.equal(inject({}, structuredClone(first.patched)).decision.outcome, 'deny', 'a capture container the configuration does not ask for is not the injection');
});

test("capture-spec: with capture, a pod's own container that could step around it is denied (test/pod/capture.test.ts shows the sidecar's uid is not captured)", () => {
  const cases: [string, (pod: Record<string, any>) => void][] = [
    ['runs as the sidecar uid', (p) => (p.spec.containers[0].securityContext = { runAsUser: 65532 })],
    ['the pod runs as the sidecar uid', (p) => (p.spec.securityContext = { ...p.spec.securityContext, runAsUser: 65532 })],
    ['adds NET_ADMIN', (p) => (p.spec.containers[0].securityContext = { capabilities: { add: ['NET_ADMIN'] } })],
    ['adds CAP_NET_RAW', (p) => (p.spec.containers[0].securityContext = { capabilities: { add: ['CAP_NET_RAW'] } })],
    ['is privileged', (p) => (p.spec.containers[0].securityContext = { privileged: true })],
  ];
  for (const [what, change] of cases) {
    const pod = samplePod();
    change(pod);
    const r = inject({ capture: 'init' }, pod);
    assert.ok(r.decision.outcome === 'deny' && r.decision.reason === 'capture-escape', `${what}: denied with capture`);
    assert.equal(inject({}, pod).decision.outcome, 'inject', `${what}: without capture there is nothing to step around`);
  }
  const pod = samplePod();
  pod.spec.securityContext = { ...pod.spec.securityContext, runAsUser: 65532 };
  pod.spec.containers[0].securityContext = { runAsUser: 1000 };
  for (const c of pod.spec.initContainers ?? []) c.securityContext = { runAsUser: 1000 };
  assert.equal(inject({ capture: 'init' }, pod).decision.outcome, 'inject', 'every container of its own overrides the pod-level uid');
});
