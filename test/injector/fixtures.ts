/**
 * Shared test inputs: a pod as a ReplicaSet creates it and an AdmissionReview
 * shaped as the API server sends it (admission.k8s.io/v1).
 */
import { randomUUID } from 'node:crypto';

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
export function admissionRequest(pod: Record<string, any>, opts: { uid?: string; operation?: string; dryRun?: boolean; namespace?: string } = {}): Record<string, any> {
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
      oldObject: operation === 'UPDATE' ? pod : null,
      dryRun: opts.dryRun ?? false,
      options: operation === 'CREATE' ? { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' } : { kind: 'UpdateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}
