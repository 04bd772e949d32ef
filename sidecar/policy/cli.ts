/**
 * The `tenant-dns policy` commands as pure functions (`validateFiles`,
 * `explain`) plus their commander wiring ({@link registerPolicyCommands}).
 */
import type { Command } from 'commander';
import { ConfigInvalidError, formatProblem } from '../config/load.ts';
import type { DNSPolicy, PlatformView, PolicyCheckOptions } from '../config/policy-schema.ts';
import { normalizeName } from '../dns/wire.ts';
import { CLUSTER_DEFAULTS, clusterZones } from '../config/cluster.ts';
import { describeError, SidecarError } from '../errors.ts';
import { explainQuestion, renderExplanation, typeNumber } from '../route/explain.ts';
import { compilePolicy } from './compile.ts';
import { loadPodLabels, loadPolicyFile, platformView } from './manager.ts';

/** What a command prints and the exit code it ends with. */
export interface CommandResult {
  readonly output: string;
  readonly exitCode: number;
}

/** What {@link validateFiles} checks the files against besides themselves. */
export interface ValidateOptions {
  /** The platform's policy: each file is checked as a tenant's policy under it (no shadowing, no denied split targets, no serviceDiscovery). */
  readonly platformPolicy?: string;
  /** The cluster domain (default cluster.local): no forward zone may lie in it or in the cluster reverse zones. */
  readonly clusterDomain?: string;
}

/**
 * Validates DNSPolicy files: `file: ok` for each good one, else one
 * `file:line: field: message` per problem. Exit code 1 when any file fails
 * (the platform file included, when one is given).
 */
export function validateFiles(paths: readonly string[], options: ValidateOptions = {}): CommandResult {
  const lines: string[] = [];
  let exitCode = 0;
  const clusterZonesList = clusterZones(options.clusterDomain ?? CLUSTER_DEFAULTS.clusterDomain, CLUSTER_DEFAULTS.clusterReverseZones);
  const check = (path: string, opts: PolicyCheckOptions): DNSPolicy | undefined => {
    try {
      const doc = loadPolicyFile(path, opts);
      lines.push(`${path}: ok`);
      return doc;
    } catch (err) {
      exitCode = 1;
      if (err instanceof ConfigInvalidError) lines.push(...err.problems.map(formatProblem));
      else lines.push(`${path}: (file): ${describeError(err)}`);
      return undefined;
    }
  };
  let platform: PlatformView | undefined;
  if (options.platformPolicy !== undefined) {
    const doc = check(options.platformPolicy, { clusterZones: clusterZonesList });
    if (doc !== undefined) platform = platformView(doc);
  }
  // With a platform file the others are tenants' files (no serviceDiscovery), even when the platform file is invalid.
  const tenantChecks: PolicyCheckOptions = options.platformPolicy === undefined ? { clusterZones: clusterZonesList } : { clusterZones: clusterZonesList, layer: 'tenant' };
  for (const path of paths) check(path, { ...tenantChecks, ...(platform ? { platform } : {}) });
  return { output: lines.join('\n') + '\n', exitCode };
}

/** What {@link explain} takes. */
export interface ExplainInput {
  /** The tenant's policy file. */
  readonly policy?: string;
  /** The platform's policy file. */
  readonly platformPolicy?: string;
  /** A downward API labels file. */
  readonly podLabels?: string;
  /** The query name. */
  readonly name: string;
  /** The query type by name (`A`, `AAAA`, `TXT`…) or number; default A. */
  readonly type?: string | number;
  /** The cluster domain (default cluster.local): names under it, and reverse zones, go to the cluster DNS. */
  readonly clusterDomain?: string;
  /** Reverse zones sent to the cluster DNS (default in-addr.arpa, ip6.arpa). */
  readonly clusterReverseZones?: readonly string[];
  /** The pod's namespace, visible under the platform's service-discovery isolation. */
  readonly namespace?: string;
}

/** Names of the rules that have a podSelector, in both policies. */
function selectorRules(...docs: (DNSPolicy | undefined)[]): string[] {
  return docs.flatMap((d) => (d?.spec.rules ?? []).filter((r) => r.podSelector !== undefined).map((r) => r.name));
}

/**
 * Says which rule or zone decides `name`/`type` and the answer the sidecar
 * would give, one `key: value` per line: the sidecar's own classification
 * (route/classify.ts) rendered by route/explain.ts. Without `podLabels`, the
 * rules with a podSelector are left out (as for a pod without labels), and
 * a `note:` line names them.
 *
 * @throws SidecarError CONFIG_READ / CONFIG_INVALID when a file cannot be loaded, or for an unknown type.
 */
export function explain(input: ExplainInput): string {
  const tenant = input.policy ? loadPolicyFile(input.policy, { layer: 'tenant' }) : undefined;
  const platform = input.platformPolicy ? loadPolicyFile(input.platformPolicy) : undefined;
  const podLabels = input.podLabels ? loadPodLabels(input.podLabels) : undefined;
  const qtype = typeNumber(input.type);
  if (qtype === undefined) throw new SidecarError('CONFIG_INVALID', `unknown query type "${input.type}"`);
  const compiled = compilePolicy({ tenant, platform, podLabels, namespace: input.namespace });
  const zones = clusterZones(input.clusterDomain ?? CLUSTER_DEFAULTS.clusterDomain, input.clusterReverseZones ?? CLUSTER_DEFAULTS.clusterReverseZones);
  let out = renderExplanation(explainQuestion(compiled, zones, normalizeName(input.name), qtype));
  const skipped = podLabels === undefined ? selectorRules(platform, tenant) : [];
  if (skipped.length > 0) out += `note: no --pod-labels given: rules with a podSelector were left out (${skipped.join(', ')})\n`;
  return out;
}

/**
 * Adds `policy validate FILE...` and `policy explain NAME [TYPE]` to
 * `program`. Output goes to stdout, errors to stderr; `setExit` receives the
 * exit code.
 */
export function registerPolicyCommands(program: Command, setExit: (code: number) => void): void {
  const policy = program.command('policy').description('Check and explain DNSPolicy files.');
  policy
    .command('validate')
    .description('Validate DNSPolicy files; prints file:line: field: message per problem and exits non-zero on any.')
    .argument('<file...>', 'DNSPolicy YAML files')
    .option('--platform-policy <file>', "the platform's DNSPolicy: the files are checked as tenant policies under it")
    .option('--cluster-domain <domain>', 'cluster domain', CLUSTER_DEFAULTS.clusterDomain)
    .action((files: string[], opts: ValidateOptions) => {
      const r = validateFiles(files, opts);
      (r.exitCode === 0 ? process.stdout : process.stderr).write(r.output);
      setExit(r.exitCode);
    });
  policy
    .command('explain')
    .description('Say which rule or zone decides a name and the answer the sidecar would give.')
    .argument('<name>', 'query name')
    .argument('[type]', 'query type (default A)')
    .option('--policy <file>', "the tenant's DNSPolicy")
    .option('--platform-policy <file>', "the platform's DNSPolicy")
    .option('--pod-labels <file>', 'downward API labels file (key="value" per line)')
    .option('--cluster-domain <domain>', 'cluster domain', CLUSTER_DEFAULTS.clusterDomain)
    .option('--namespace <ns>', "the pod's namespace, always visible under the platform's service-discovery isolation")
    .action((name: string, type: string | undefined, opts: { policy?: string; platformPolicy?: string; podLabels?: string; clusterDomain?: string; namespace?: string }) => {
      try {
        process.stdout.write(explain({ ...opts, name, type }));
        setExit(0);
      } catch (err) {
        process.stderr.write(`tenant-dns policy explain: ${describeError(err)}\n`);
        setExit(1);
      }
    });
}
