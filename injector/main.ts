/**
 * Process entry of `tenant-dns injector`: load the config, reach the API
 * (`--kubeconfig`, else the pod's ServiceAccount), pick the tenant resolver
 * (namespace informer with API access, namespace name without), start the
 * controller (leader-elected; `--controller=false` turns it off) and the
 * HTTPS server; SIGTERM/SIGINT turn /readyz off, finish what is in flight,
 * stop the controller, release its Lease and resolve.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { ConnectionLimits } from '../sidecar/net/guard.ts';
import type { KubeConfig } from '@kubernetes/client-node';
import type { InjectorConfig } from './config-schema.ts';
import { loadInjectorConfig } from './config.ts';
import { startControlPlane, type ControlPlane } from './controller.ts';
import { loadKubeConfig } from './kube.ts';
import { createControllerMetrics, createInjectorMetrics } from './metrics.ts';
import { NamespaceNameResolver, NamespaceWatchCache, type TenantResolver } from './namespaces.ts';
import { startInjectorServer, type InjectorServer } from './server.ts';

/** Options of `tenant-dns injector`. */
export interface InjectorOptions {
  /** ADDR:PORT, e.g. `0.0.0.0:8443`. */
  readonly listen: string;
  readonly tlsCert: string;
  readonly tlsKey: string;
  readonly config?: string;
  /** Read tenant labels from namespaces (needs RBAC). Default true. */
  readonly namespaceLookup?: boolean;
  readonly maxBodyBytes?: number;
  /** Connection caps (`--max-connections-per-source`, `--max-connections`); default DEFAULT_INJECTOR_CONNECTIONS. */
  readonly connections?: ConnectionLimits;
  /** A kubeconfig file for API access; default: the pod's ServiceAccount in a cluster, else none. */
  readonly kubeconfig?: string;
  /** Run the policy controller when the API is reachable. Default true. */
  readonly controller?: boolean;
}

/** Writes one JSON log line to stderr. */
export function log(level: 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, component: 'injector', msg: message, ...fields }) + '\n');
}

/** Splits ADDR:PORT (IPv6 in brackets). */
export function splitHostPort(v: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]]*)):([0-9]{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`--listen ${v}: expected ADDR:PORT`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

/** The namespace informer (with API access, when the lookup or the controller needs it) and the tenant resolver. */
function tenantResolver(config: InjectorConfig, kubeConfig: KubeConfig | undefined, lookup: boolean): { tenants: TenantResolver; cache?: NamespaceWatchCache } {
  if (!kubeConfig) {
    log('info', 'tenant names are namespace names (no API access)');
    return { tenants: new NamespaceNameResolver() };
  }
  const cache = new NamespaceWatchCache({
    kubeConfig,
    label: config.tenantLabel,
    onError: (message, err) => log('warn', message, { error: err instanceof Error ? err.message : String(err) }),
  });
  cache.start();
  if (!lookup) log('info', 'tenant names are namespace names (--no-namespace-lookup)');
  return { tenants: lookup ? cache : new NamespaceNameResolver(), cache };
}

/** Starts the injector; resolves with the running server and a stop function. */
export async function startInjector(opts: InjectorOptions): Promise<{ server: InjectorServer; stop: () => Promise<void> }> {
  const config = loadInjectorConfig(opts.config);
  const { host, port } = splitHostPort(opts.listen);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'tenant_dns_injector_' });
  const metrics = createInjectorMetrics(registry);
  if (config.upstreams.length === 0 && !config.clusterDns) {
    log('warn', 'neither upstreams nor clusterDns is configured: injected sidecars have nowhere to send names they do not answer themselves');
  }
  const wantController = opts.controller ?? true;
  const lookup = opts.namespaceLookup ?? true;
  const kubeConfig = lookup || wantController || opts.kubeconfig ? loadKubeConfig(opts.kubeconfig) : undefined;
  const { tenants, cache } = tenantResolver(config, kubeConfig, lookup);
  let control: ControlPlane | undefined;
  if (wantController && kubeConfig && cache) {
    const leaseNamespace = process.env.POD_NAMESPACE || kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace || 'tenant-dns-system';
    control = startControlPlane({ kubeConfig, config, namespaces: cache.namespaces, metrics: createControllerMetrics(registry), log, leaseNamespace });
    log('info', 'controller started', { leaseNamespace, identity: control.elector.identity });
  } else if (wantController) {
    log('info', 'controller not started: no API access (in-cluster ServiceAccount or --kubeconfig)');
  }
  const server = await startInjectorServer({
    host,
    port,
    certFile: opts.tlsCert,
    keyFile: opts.tlsKey,
    registry,
    maxBodyBytes: opts.maxBodyBytes,
    connections: opts.connections,
    deps: { config, tenants, metrics, log },
  });
  log('info', 'injector listening', { address: server.address.address, port: server.address.port, failureMode: config.failureMode });
  return {
    server,
    stop: async () => {
      await server.close();
      await control?.stop();
      tenants.close();
      cache?.close();
    },
  };
}

/** Runs the injector until SIGTERM/SIGINT; resolves with the exit code. */
export async function runInjector(opts: InjectorOptions): Promise<number> {
  let running;
  try {
    running = await startInjector(opts);
  } catch (err) {
    log('error', 'injector failed to start', { error: err instanceof Error ? err.message : String(err), cause: err instanceof Error && err.cause instanceof Error ? err.cause.message : undefined });
    return 1;
  }
  const { stop } = running;
  return await new Promise<number>((resolve) => {
    const onSignal = (signal: string) => {
      log('info', 'shutting down', { signal });
      void stop().then(() => resolve(0));
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });
}
