/**
 * The injector's subcommands: `tenant-dns injector` (the admission webhook
 * server), `tenant-dns inject` (offline injection of manifests) and
 * `tenant-dns render` (offline rendering of policy objects into ConfigMaps).
 */
import { InvalidArgumentError, type Command } from 'commander';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

function bool(v: string): boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new InvalidArgumentError('expected true or false');
}

/**
 * Adds `injector`, `inject` and `render` to `program`. A failing command sets `process.exitCode`.
 * Their code (and node:https, node:tls) loads when one of them runs, not when the sidecar starts.
 */
export function registerInjectorCommands(program: Command): void {
  program
    .command('injector')
    .description('Run the admission webhooks that inject the tenant-dns sidecar and keep it exact (HTTPS: /mutate, /validate, /healthz, /readyz, /metrics).')
    .requiredOption('--tls-cert <file>', 'PEM certificate (chain); re-read when it changes')
    .requiredOption('--tls-key <file>', 'PEM private key; re-read when it changes')
    .option('--listen <addr:port>', 'address to serve HTTPS on', '0.0.0.0:8443')
    .option('--config <file>', 'injector configuration YAML (image, upstreams, cluster DNS, failure mode, ...)')
    .option('--no-namespace-lookup', 'do not read tenant labels from namespaces; the tenant is the namespace name')
    .option('--max-body-bytes <n>', 'largest AdmissionReview accepted (bytes)', positiveInt, 3 * 1024 * 1024)
    .option('--max-connections-per-source <n>', 'most connections one source address may hold open', positiveInt, 256)
    .option('--max-connections <n>', 'most connections open at once, all sources together', positiveInt, 1024)
    .option('--kubeconfig <file>', 'kubeconfig for API access (default: the pod\'s ServiceAccount in a cluster)')
    .option('--controller <bool>', 'run the leader-elected policy controller when the API is reachable (true or false)', bool, true)
    .action(async (opts: { tlsCert: string; tlsKey: string; listen: string; config?: string; namespaceLookup: boolean; maxBodyBytes: number; maxConnectionsPerSource: number; maxConnections: number; kubeconfig?: string; controller: boolean }) => {
      const { runInjector } = await import('./main.ts');
      const code = await runInjector({
        listen: opts.listen,
        tlsCert: opts.tlsCert,
        tlsKey: opts.tlsKey,
        config: opts.config,
        namespaceLookup: opts.namespaceLookup,
        maxBodyBytes: opts.maxBodyBytes,
        connections: { perSource: opts.maxConnectionsPerSource, total: opts.maxConnections },
        kubeconfig: opts.kubeconfig,
        controller: opts.controller,
      });
      if (code !== 0) process.exitCode = code;
    });

  program
    .command('inject')
    .description('Inject the sidecar into Kubernetes manifests offline (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, List); YAML on stdout, skips on stderr.')
    .requiredOption('-f, --filename <file>', 'manifest file, or - for stdin')
    .option('--config <file>', 'injector configuration YAML')
    .option('-n, --namespace <namespace>', 'namespace for objects that do not name one', 'default')
    .option('--tenant <name>', 'tenant name (default: the namespace; namespace labels cannot be read offline)')
    .option('-o, --output <file>', 'write the result here instead of stdout')
    .action(async (opts: { filename: string; config?: string; namespace: string; tenant?: string; output?: string }) => {
      const { runInjectCommand } = await import('./inject-cli.ts');
      const code = runInjectCommand(opts);
      if (code !== 0) process.exitCode = code;
    });

  program
    .command('render')
    .description(
      'Render ClusterDNSPolicy, DNSPolicy and Namespace objects offline into the policy ConfigMaps the controller would write (YAML on stdout), or print why an object would not be accepted (FILE:LINE: field: message, exit 1).',
    )
    .requiredOption('-f, --filename <files...>', 'YAML files (multi-document, Lists too), or - for stdin; repeatable')
    .option('--config <file>', 'injector configuration YAML (ConfigMap names, tenant label, excluded namespaces, cluster domain)')
    .option('-n, --namespace <namespace>', 'namespace for DNSPolicies that do not name one', 'default')
    .option('-o, --output <file>', 'write the result here instead of stdout')
    .action(async (opts: { filename: string[]; config?: string; namespace: string; output?: string }) => {
      const { runRenderCommand } = await import('./render-cli.ts');
      const code = runRenderCommand(opts);
      if (code !== 0) process.exitCode = code;
    });
}
