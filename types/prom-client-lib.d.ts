/**
 * prom-client ships types for its index only. The sidecar imports the
 * modules it uses directly (sidecar/metrics/registry.ts says why); each
 * module's export is the index's export of the same name.
 */
declare module 'prom-client/lib/registry.js' {
  import { Registry } from 'prom-client';
  export default Registry;
}
declare module 'prom-client/lib/counter.js' {
  import { Counter } from 'prom-client';
  export default Counter;
}
declare module 'prom-client/lib/gauge.js' {
  import { Gauge } from 'prom-client';
  export default Gauge;
}
declare module 'prom-client/lib/metrics/gc.js' {
  import type { Registry } from 'prom-client';
  /** Registers one group of prom-client's default metrics in `registry`. */
  export default function collect(registry: Registry, config?: { eventLoopMonitoringPrecision?: number }): void;
}
declare module 'prom-client/lib/metrics/heapSizeAndUsed.js' {
  import type { Registry } from 'prom-client';
  /** Registers one group of prom-client's default metrics in `registry`. */
  export default function collect(registry: Registry, config?: { eventLoopMonitoringPrecision?: number }): void;
}
declare module 'prom-client/lib/metrics/heapSpacesSizeAndUsed.js' {
  import type { Registry } from 'prom-client';
  /** Registers one group of prom-client's default metrics in `registry`. */
  export default function collect(registry: Registry, config?: { eventLoopMonitoringPrecision?: number }): void;
}
declare module 'prom-client/lib/metrics/osMemoryHeap.js' {
  import type { Registry } from 'prom-client';
  /** Registers one group of prom-client's default metrics in `registry`. */
  export default function collect(registry: Registry, config?: { eventLoopMonitoringPrecision?: number }): void;
}
declare module 'prom-client/lib/metrics/processCpuTotal.js' {
  import type { Registry } from 'prom-client';
  /** Registers one group of prom-client's default metrics in `registry`. */
  export default function collect(registry: Registry, config?: { eventLoopMonitoringPrecision?: number }): void;
}
declare module 'prom-client/lib/metrics/processHandles.js' {
  import type { Registry } from 'prom-client';
  /** Registers one group of prom-client's default metrics in `registry`. */
  export default function collect(registry: Registry, config?: { eventLoopMonitoringPrecision?: number }): void;
}
declare module 'prom-client/lib/metrics/processMaxFileDescriptors.js' {
  import type { Registry } from 'prom-client';
  /** Registers one group of prom-client's default metrics in `registry`. */
  export default function collect(registry: Registry, config?: { eventLoopMonitoringPrecision?: number }): void;
}
declare module 'prom-client/lib/metrics/processOpenFileDescriptors.js' {
  import type { Registry } from 'prom-client';
  /** Registers one group of prom-client's default metrics in `registry`. */
  export default function collect(registry: Registry, config?: { eventLoopMonitoringPrecision?: number }): void;
}
declare module 'prom-client/lib/metrics/processRequests.js' {
  import type { Registry } from 'prom-client';
  /** Registers one group of prom-client's default metrics in `registry`. */
  export default function collect(registry: Registry, config?: { eventLoopMonitoringPrecision?: number }): void;
}
declare module 'prom-client/lib/metrics/processResources.js' {
  import type { Registry } from 'prom-client';
  /** Registers one group of prom-client's default metrics in `registry`. */
  export default function collect(registry: Registry, config?: { eventLoopMonitoringPrecision?: number }): void;
}
declare module 'prom-client/lib/metrics/processStartTime.js' {
  import type { Registry } from 'prom-client';
  /** Registers one group of prom-client's default metrics in `registry`. */
  export default function collect(registry: Registry, config?: { eventLoopMonitoringPrecision?: number }): void;
}
declare module 'prom-client/lib/metrics/version.js' {
  import type { Registry } from 'prom-client';
  /** Registers one group of prom-client's default metrics in `registry`. */
  export default function collect(registry: Registry, config?: { eventLoopMonitoringPrecision?: number }): void;
}
