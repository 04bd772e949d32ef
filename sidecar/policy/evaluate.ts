/**
 * Pure policy evaluation over a {@link CompiledPolicy}: which rule decides a
 * name, and which split or forward zone (if any) it belongs to. No I/O.
 *
 * Precedence (DESIGN §1, §5): the platform's policy is evaluated first; a
 * platform deny (a matching deny rule, or the platform's default when it is
 * deny and no platform rule matches) is final. Otherwise the tenant's most
 * specific matching rule decides; with no tenant match, a matching platform
 * allow/log rule applies; else the tenant's default action.
 */
import type { CompiledPolicy, Evaluation, ForwardMatch, SplitMatch } from './compile.ts';

function lastLabel(name: string): string {
  const i = name.lastIndexOf('.');
  return i < 0 ? name : name.slice(i + 1);
}

function withSoa(ev: Evaluation, qname: string): Evaluation {
  if (ev.decision.action !== 'deny' || ev.soaZone !== '' || qname === '') return ev;
  return { ...ev, soaZone: lastLabel(qname) };
}

/** The evaluation for `qname` (sidecar form: lower case, no trailing dot). */
export function evaluate(compiled: CompiledPolicy, qname: string): Evaluation {
  const platform = compiled.platformRules.lookup(qname);
  if (platform !== undefined && platform.decision.action === 'deny') return platform;
  if (platform === undefined && compiled.platformDefault !== undefined) return withSoa(compiled.platformDefault, qname);
  const tenant = compiled.tenantRules.lookup(qname);
  if (tenant !== undefined) return tenant;
  if (platform !== undefined) return platform;
  return withSoa(compiled.tenantDefault, qname);
}

/** The most specific split zone `qname` falls in, or undefined. */
export function findSplitZone(compiled: CompiledPolicy, qname: string): SplitMatch | undefined {
  return compiled.splitZones.lookup(qname);
}

/** The most specific forward zone `qname` falls in, or undefined. */
export function findForwardZone(compiled: CompiledPolicy, qname: string): ForwardMatch | undefined {
  return compiled.forwardZones.lookup(qname);
}
