/**
 * `tenant-dns gateway`: the command line of the authoritative server for the
 * tenants' delegated domains. Its code loads when the command runs.
 */
import { InvalidArgumentError, type Command } from 'commander';
import type { GatewayFlags } from './main.ts';

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

function ttl(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 2_147_483_647) throw new InvalidArgumentError('expected a TTL in seconds (0 to 2147483647)');
  return n;
}

/** Adds `gateway` to `program`; `setExit` receives its exit code. */
export function registerGatewayCommand(program: Command, setExit: (code: number) => void): void {
  program
    .command('gateway')
    .description("Serve the tenants' delegated domains authoritatively (UDP and TCP) from Ingress, LoadBalancer Service and HTTPRoute objects, each tenant only under the domains the platform assigned to it.")
    .option('--listen <addr:port>', 'where to serve UDP and TCP; repeatable (default 0.0.0.0:5353)', collect)
    .option('--zone <zone>', 'a zone delegated to the gateway; repeatable, at least one', collect, [])
    .option('--ns <name[=ip,...]>', "a name server of every zone (NS records; the first is the SOA MNAME); its addresses are published when it lies in a served zone; repeatable, at least one", collect, [])
    .option('--hostmaster <name>', 'the SOA RNAME, a mailbox as a name (default hostmaster.<zone>)')
    .option('--ttl <seconds>', 'TTL of every record, and the negative-answer TTL (SOA minimum)', ttl, 60)
    .option('--objects <files...>', 'read the objects from these YAML files (multi-document, Lists too) instead of the Kubernetes API')
    .option('--kubeconfig <file>', 'kubeconfig for the Kubernetes API (default: the pod\'s ServiceAccount, in a cluster); not with --objects')
    .option('--tenant-domain <tenant=domain>', 'assign a domain to a tenant, beside what ClusterDNSPolicy spec.domains assigns; repeatable', collect, [])
    .option('--tenant-label <label>', 'the namespace label naming its tenant (else the namespace name)', 'tenant-dns.io/tenant')
    .option('--metrics <addr:port>', 'where to serve /metrics, /healthz and /readyz', '0.0.0.0:9153')
    .option('--dump-zone <zone>', 'write the zone as a zone file to stdout from the same data, and exit')
    .option('--log-level <level>', 'debug, info, warn or error', 'info')
    .action(async (opts: GatewayFlags) => {
      const { runGateway } = await import('./main.ts');
      setExit(await runGateway(opts));
    });
}
