/**
 * Shared test inputs: a pod as a ReplicaSet creates it, an AdmissionReview
 * shaped as the API server sends it (admission.k8s.io/v1), the defaults the
 * API server adds to a patched pod, and the injector's HTTPS server with a
 * client for it.
 */
import { randomUUID } from 'node:crypto';
import https from 'node:https';
import type { TestContext } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import { parseInjectorConfig } from '../../injector/config.ts';
import { createInjectorMetrics } from '../../injector/metrics.ts';
import { NamespaceNameResolver, type TenantResolver } from '../../injector/namespaces.ts';
import { startInjectorServer, type InjectorServer, type InjectorServerOptions } from '../../injector/server.ts';
import { makeTestPki, type TestPki } from '../helpers/k8s-certs.ts';

/** A pod without a name (generateName), as a ReplicaSet creates it. */
export function samplePod(): Record<string, any> {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'web-5d8f7c9b4-',
      namespace: 'team-a',
      labels: { app: 'web', 'pod-template-hash': '5d8f7c9b4' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d8f7c9b4', uid: randomUUID(), controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      containers: [{ name: 'app', image: 'nginx:1.27', resources: {}, terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', imagePullPolicy: 'IfNotPresent' }],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'default',
      securityContext: {},
      schedulerName: 'default-scheduler',
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
      priority: 0,
    },
    status: {},
  };
}

/** An AdmissionReview request for `pod`, with the fields the API server fills in. */
export function admissionRequest(
  pod: Record<string, any>,
  opts: { uid?: string; operation?: string; dryRun?: boolean; namespace?: string; oldObject?: Record<string, any>; subResource?: string } = {},
): Record<string, any> {
  const operation = opts.operation ?? 'CREATE';
  return {
    kind: 'AdmissionReview',
    apiVersion: 'admission.k8s.io/v1',
    request: {
      uid: opts.uid ?? randomUUID(),
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      name: operation === 'CREATE' ? undefined : 'web-5d8f7c9b4-abcde',
      namespace: opts.namespace ?? 'team-a',
      operation,
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller', uid: randomUUID(), groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'] },
      object: pod,
      ...(opts.subResource ? { subResource: opts.subResource } : {}),
      oldObject: operation === 'UPDATE' ? (opts.oldObject ?? pod) : null,
      dryRun: opts.dryRun ?? false,
      options: operation === 'CREATE' ? { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' } : { kind: 'UpdateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}

/** Where the ServiceAccount admission plugin mounts the API token in every container. */
const SA_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * `pod` as the API server stores it after a mutating webhook's patch: the
 * defaults of pkg/apis/core/v1/defaults.go filled in on every container and
 * volume (termination message, probe thresholds, `fieldRef.apiVersion`,
 * `defaultMode`, requests from limits), and the ServiceAccount plugin's token
 * volume mounted into every container (it runs again when the webhook is
 * reinvoked). Returns a new object.
 */
export function apiServerDefaults(input: Record<string, any>): Record<string, any> {
  const pod = structuredClone(input);
  const spec = pod.spec;
  const fieldRef = (f: any) => {
    if (f?.fieldRef && !f.fieldRef.apiVersion) f.fieldRef.apiVersion = 'v1';
  };
  const probe = (p: any) => {
    if (!p) return;
    p.timeoutSeconds ??= 1;
    p.periodSeconds ??= 10;
    p.successThreshold ??= 1;
    p.failureThreshold ??= 3;
    if (p.httpGet) {
      p.httpGet.path ??= '/';
      p.httpGet.scheme ??= 'HTTP';
    }
  };
  const tokenVolume = 'kube-api-access-x7k2q';
  const automount = spec.automountServiceAccountToken !== false;
  if (automount && !(spec.volumes ?? []).some((v: any) => v.name === tokenVolume)) {
    spec.volumes = [...(spec.volumes ?? []), { name: tokenVolume, projected: { defaultMode: 420, sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }] } }];
  }
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    c.terminationMessagePath ??= '/dev/termination-log';
    c.terminationMessagePolicy ??= 'File';
    c.imagePullPolicy ??= 'IfNotPresent';
    for (const p of [c.startupProbe, c.readinessProbe, c.livenessProbe]) probe(p);
    for (const port of c.ports ?? []) port.protocol ??= 'TCP';
    for (const e of c.env ?? []) fieldRef(e.valueFrom);
    if (c.resources?.limits) {
      c.resources.requests ??= {};
      for (const [k, v] of Object.entries(c.resources.limits)) c.resources.requests[k] ??= v;
    }
    if (automount && !(c.volumeMounts ?? []).some((m: any) => m.mountPath === SA_TOKEN_PATH)) {
      c.volumeMounts = [...(c.volumeMounts ?? []), { name: tokenVolume, readOnly: true, mountPath: SA_TOKEN_PATH }];
    }
  }
  for (const v of spec.volumes ?? []) {
    if (v.configMap) v.configMap.defaultMode ??= 420;
    if (v.downwardAPI) {
      v.downwardAPI.defaultMode ??= 420;
      for (const item of v.downwardAPI.items ?? []) fieldRef(item);
    }
  }
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.enableServiceLinks ??= true;
  return pod;
}

/** An HTTPS answer from the injector. */
export interface HttpsReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

/** What {@link injectorRequest} sends besides the path. */
export interface InjectorRequestInit {
  readonly method?: string;
  readonly body?: string | Buffer;
  readonly headers?: Record<string, string>;
  /** The loopback address to connect from (tests that tell clients apart by source address). */
  readonly from?: string;
}

/**
 * One HTTPS request to the injector at 127.0.0.1:`port` on a connection of
 * its own, verifying its certificate against `ca` for the Service's name.
 */
export function injectorRequest(ca: Buffer, port: number, path: string, init: InjectorRequestInit = {}): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: init.method ?? 'GET',
        ca,
        servername: 'tenant-dns-injector.tenant-dns-system.svc',
        headers: { 'Content-Type': 'application/json', ...init.headers },
        agent: false,
        ...(init.from ? { localAddress: init.from } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

/** POSTs `body` (JSON) to the injector ({@link injectorRequest}), from the loopback address `from` when given. */
export function postJson(ca: Buffer, port: number, path: string, body: unknown, from?: string): Promise<HttpsReply> {
  return injectorRequest(ca, port, path, { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body), ...(from ? { from } : {}) });
}

/** Options of {@link startTestInjector}. */
export interface TestInjectorOptions {
  /** Injector config (defaults applied); default: kube-dns at 10.96.0.10:53. */
  readonly config?: Record<string, unknown>;
  /** Default: the namespace name is the tenant. */
  readonly tenants?: TenantResolver;
  readonly maxBodyBytes?: number;
  /** Default 0: certificates are reloaded only when the test asks. */
  readonly certCheckIntervalMs?: number;
  /** The server's limits and deadlines; its defaults where absent. */
  readonly server?: Pick<InjectorServerOptions, 'connections' | 'handshakeTimeoutMs' | 'headersTimeoutMs' | 'requestTimeoutMs' | 'admissions'>;
}

/** A running injector for a test. */
export interface TestInjector {
  readonly pki: TestPki;
  readonly server: InjectorServer;
  readonly port: number;
  readonly registry: Registry;
}

/**
 * Starts the injector's HTTPS server on 127.0.0.1:0 with a certificate for its
 * Service name, closed (and the certificate removed) in `t.after`.
 */
export async function startTestInjector(t: TestContext, opts: TestInjectorOptions = {}): Promise<TestInjector> {
  const pki = makeTestPki(['tenant-dns-injector.tenant-dns-system.svc']);
  t.after(() => pki.cleanup());
  const registry = new Registry();
  const server = await startInjectorServer({
    host: '127.0.0.1',
    port: 0,
    certFile: pki.certFile,
    keyFile: pki.keyFile,
    registry,
    maxBodyBytes: opts.maxBodyBytes,
    certCheckIntervalMs: opts.certCheckIntervalMs ?? 0,
    ...opts.server,
    deps: { config: parseInjectorConfig(opts.config ?? { clusterDns: '10.96.0.10:53' }), tenants: opts.tenants ?? new NamespaceNameResolver(), metrics: createInjectorMetrics(registry) },
  });
  t.after(() => server.close(100));
  return { pki, server, port: server.address.port, registry };
}

/** A client-node KubeConfig for an API server at `server` (plain HTTP fakes included), with a bearer token. */
export function kubeConfigAt(server: string, token = 'test-token'): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'test', server, skipTLSVerify: true }],
    users: [{ name: 'test', token }],
    contexts: [{ name: 'test', cluster: 'test', user: 'test' }],
    currentContext: 'test',
  });
  return kc;
}

/** An AdmissionReview for a ConfigMap write by `username`, as the API server sends it (the namespace: the object's, else team-a). */
export function configMapReview(
  operation: 'CREATE' | 'UPDATE' | 'DELETE',
  username: string,
  object: Record<string, any> | null,
  oldObject: Record<string, any> | null,
  opts: { dryRun?: boolean } = {},
): Record<string, any> {
  const meta = (object ?? oldObject)!.metadata;
  const options = { CREATE: 'CreateOptions', UPDATE: 'UpdateOptions', DELETE: 'DeleteOptions' }[operation];
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: { group: '', version: 'v1', kind: 'ConfigMap' },
      resource: { group: '', version: 'v1', resource: 'configmaps' },
      requestKind: { group: '', version: 'v1', kind: 'ConfigMap' },
      requestResource: { group: '', version: 'v1', resource: 'configmaps' },
      name: meta.name,
      namespace: meta.namespace ?? 'team-a',
      operation,
      userInfo: { username, uid: randomUUID(), groups: ['system:authenticated'] },
      object,
      oldObject,
      dryRun: opts.dryRun ?? false,
      options: { kind: options, apiVersion: 'meta.k8s.io/v1' },
    },
  };
}
