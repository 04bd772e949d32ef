/**
 * The DNS capture init container (`capture: init`) as raw Kubernetes JSON:
 * `tenant-dns capture` from the sidecar's image, root with NET_ADMIN and
 * NET_RAW only, which installs the nftables rules of sidecar/capture/ in the
 * pod's network namespace and exits before the sidecar starts. Its flags are
 * written through the command's own flag names ({@link CAPTURE_FLAGS}). Pure:
 * no I/O.
 */
import { CAPTURE_FLAGS } from '../sidecar/capture/rules.ts';
import type { InjectorConfig } from './config-schema.ts';
import type { JsonObject } from './json.ts';
import { CAPTURE_NAME, SIDECAR_UID } from './names.ts';

/**
 * The capture init container. Captured queries go to the sidecar's listen
 * address; the sidecar's uid is left alone. A pod that already has a
 * container of this name is denied by mutate.ts (a name the injector needs,
 * or a capture container that is not exactly this one).
 */
export function captureContainer(config: Pick<InjectorConfig, 'image' | 'imagePullPolicy' | 'listen' | 'resources'>): JsonObject {
  return {
    name: CAPTURE_NAME,
    image: config.image,
    imagePullPolicy: config.imagePullPolicy,
    args: ['capture', `${CAPTURE_FLAGS.sidecarUid}=${SIDECAR_UID}`, `${CAPTURE_FLAGS.redirectTo}=${config.listen}`],
    resources: { requests: { ...config.resources.requests }, limits: { ...config.resources.limits } },
    securityContext: {
      // nft needs CAP_NET_ADMIN in the pod's network namespace; the image's user is the sidecar's.
      runAsUser: 0,
      runAsNonRoot: false,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}
