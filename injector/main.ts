/**
 * Process entry of `tenant-dns injector`: load the config, pick the tenant
 * resolver (namespace watch cache in a cluster, namespace name elsewhere),
 * start the HTTPS server; SIGTERM/SIGINT turn /readyz off, finish what is in
 * flight and resolve.
 */
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { ConnectionLimits } from '../sidecar/net/guard.ts';
import type { InjectorConfig } from './config-schema.ts';
import { loadInjectorConfig } from './config.ts';
import { createInjectorMetrics } from './metrics.ts';
import { loadKubeConfig } from './kube.ts';
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

function tenantResolver(config: InjectorConfig, enabled: boolean): TenantResolver {
  const kubeConfig = enabled ? loadKubeConfig() : undefined;
  if (!kubeConfig) {
    log('info', 'tenant names are namespace names (no in-cluster API access)');
    return new NamespaceNameResolver();
  }
  const cache = new NamespaceWatchCache({
    kubeConfig,
    label: config.tenantLabel,
    onError: (message, err) => log('warn', message, { error: err instanceof Error ? err.message : String(err) }),
  });
  cache.start();
  return cache;
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
  const tenants = tenantResolver(config, opts.namespaceLookup ?? true);
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
      tenants.close();
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
