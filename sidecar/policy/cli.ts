/**
 * The `tenant-dns policy` commands as pure functions (`validateFiles`,
 * `explain`) plus their commander wiring ({@link registerPolicyCommands}).
 */
import type { Command } from 'commander';
import types from 'dns-packet/types.js';
import { ConfigInvalidError, formatProblem } from '../config/load.ts';
import { RRType } from '../dns/constants.ts';
import { normalizeName } from '../dns/wire.ts';
import { CLUSTER_DEFAULTS, clusterZoneOf, clusterZones } from '../config/cluster.ts';
import { describeError, SidecarError } from '../errors.ts';
import { compilePolicy, type DenyResponse, type Evaluation } from './compile.ts';
import { evaluate, findForwardZone, findSplitZone } from './evaluate.ts';
import { loadPodLabels, loadPolicyFile } from './manager.ts';
import { isIP } from 'node:net';

/** What a command prints and the exit code it ends with. */
export interface CommandResult {
  readonly output: string;
  readonly exitCode: number;
}

/**
 * Validates DNSPolicy files: `file: ok` for each good one, else one
 * `file:line: field: message` per problem. Exit code 1 when any file fails.
 */
export function validateFiles(paths: readonly string[]): CommandResult {
  const lines: string[] = [];
  let exitCode = 0;
  for (const path of paths) {
    try {
      loadPolicyFile(path);
      lines.push(`${path}: ok`);
    } catch (err) {
      exitCode = 1;
      if (err instanceof ConfigInvalidError) lines.push(...err.problems.map(formatProblem));
      else lines.push(`${path}:0: (file): ${describeError(err)}`);
    }
  }
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
}

function typeNumber(t: string | number | undefined): number {
  if (t === undefined) return RRType.A;
  if (typeof t === 'number') return t;
  if (/^\d+$/.test(t)) return Number(t);
  const n = types.toType(t.toUpperCase());
  if (!n) throw new SidecarError('CONFIG_INVALID', `unknown query type "${t}"`);
  return n;
}

function typeText(t: number): string {
  return types.toString(t);
}

function who(ev: Evaluation): string {
  if (ev.layer === 'default') return 'the tenant default action';
  if (ev.ruleName === '') return 'the platform default action';
  return `${ev.layer} rule "${ev.ruleName}" (glob ${ev.ruleGlob})`;
}

function zoneText(zone: string): string {
  return zone === '' ? '.' : zone;
}

function denyAnswer(r: DenyResponse, qtype: number, soaZone: string): string {
  switch (r.type) {
    case 'refused':
      return 'REFUSED with EDE 15 (Blocked)';
    case 'nodata':
      return `NOERROR with no answer (NODATA), SOA ${zoneText(soaZone)} and EDE 15 (Blocked)`;
    case 'sinkhole': {
      const fam = qtype === RRType.A ? 4 : qtype === RRType.AAAA ? 6 : 0;
      const addrs = r.addresses.filter((a) => isIP(a) === fam);
      if (addrs.length === 0) return `NOERROR with no answer (NODATA), SOA ${zoneText(soaZone)} and EDE 15 (Blocked)`;
      return `sinkhole ${typeText(qtype)} ${addrs.join(', ')} (TTL ${r.ttl}) with EDE 15 (Blocked)`;
    }
    default:
      return `NXDOMAIN with SOA ${zoneText(soaZone)} and EDE 15 (Blocked)`;
  }
}

/**
 * Says which rule or zone decides `name`/`type` and the answer the sidecar
 * would give, one `key: value` per line.
 *
 * @throws SidecarError CONFIG_READ / CONFIG_INVALID when a file cannot be loaded.
 */
export function explain(input: ExplainInput): string {
  const tenant = input.policy ? loadPolicyFile(input.policy) : undefined;
  const platform = input.platformPolicy ? loadPolicyFile(input.platformPolicy) : undefined;
  const podLabels = input.podLabels ? loadPodLabels(input.podLabels) : undefined;
  const compiled = compilePolicy({ tenant, platform, podLabels });
  const qname = normalizeName(input.name);
  const qtype = typeNumber(input.type);
  const lines = [`query: ${zoneText(qname)} ${typeText(qtype)}`];
  const ev = evaluate(compiled, qname);
  lines.push(`decided by: ${who(ev)}`);
  lines.push(`action: ${ev.decision.action}${ev.decision.log && ev.decision.action !== 'log' ? ' (logged)' : ''}`);
  if (ev.decision.action === 'deny') {
    lines.push(`answer: ${denyAnswer(ev.response!, qtype, ev.soaZone)}`);
    return lines.join('\n') + '\n';
  }
  const split = findSplitZone(compiled, qname);
  if (split) {
    const z = split.zone;
    lines.push(`split zone: ${z.layer} "${z.name}" (glob ${split.glob})`);
    if (z.cname !== undefined) {
      lines.push(
        qtype === RRType.CNAME
          ? `answer: CNAME ${z.cname} (TTL ${z.ttl})`
          : `answer: CNAME ${z.cname} (TTL ${z.ttl}) then ${typeText(qtype)} of ${z.cname} via group ${z.resolveVia}`,
      );
    } else {
      const addrs = qtype === RRType.A ? z.v4 : qtype === RRType.AAAA ? z.v6 : qtype === RRType.ANY ? [...z.v4, ...z.v6] : [];
      lines.push(
        addrs.length > 0
          ? `answer: ${typeText(qtype)} ${addrs.join(', ')} (TTL ${z.ttl})`
          : `answer: NOERROR with no answer (NODATA) and SOA ${zoneText(split.soaZone)}`,
      );
    }
    return lines.join('\n') + '\n';
  }
  const zones = clusterZones(input.clusterDomain ?? CLUSTER_DEFAULTS.clusterDomain, input.clusterReverseZones ?? CLUSTER_DEFAULTS.clusterReverseZones);
  const cluster = clusterZoneOf(qname, zones);
  if (cluster !== undefined) {
    lines.push(`answer: forwarded to the cluster DNS (cluster zone ${cluster})`);
    return lines.join('\n') + '\n';
  }
  const fwd = findForwardZone(compiled, qname);
  if (fwd) {
    lines.push(`answer: forwarded to zone ${fwd.zone.name} (${fwd.matched}) via ${fwd.zone.upstreams.join(', ')}`);
    return lines.join('\n') + '\n';
  }
  lines.push('answer: allowed: forwarded to the default upstreams');
  return lines.join('\n') + '\n';
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
    .action((files: string[]) => {
      const r = validateFiles(files);
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
    .action((name: string, type: string | undefined, opts: { policy?: string; platformPolicy?: string; podLabels?: string; clusterDomain?: string }) => {
      try {
        process.stdout.write(explain({ ...opts, name, type }));
        setExit(0);
      } catch (err) {
        process.stderr.write(`tenant-dns policy explain: ${describeError(err)}\n`);
        setExit(1);
      }
    });
}
