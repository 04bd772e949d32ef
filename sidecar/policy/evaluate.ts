/**
 * Pure policy evaluation over a {@link CompiledPolicy}: which rule decides a
 * name. No I/O. The whole classification of a question (split, cluster and
 * forward zones too) is route/classify.ts, which calls this first.
 *
 * Precedence (DESIGN §1, §5): the platform's policy is evaluated first; a
 * platform deny (a matching deny rule, or the platform's default when it is
 * deny and no platform rule matches) is final. Otherwise the tenant's most
 * specific matching rule decides; with no tenant match, a matching platform
 * allow/log rule applies; else the tenant's default action. A matching
 * platform rule that logs makes the decision logged whichever rule decides.
 */
import { nameLabels, type CompiledPolicy, type Evaluation } from './compile.ts';

function lastLabel(name: string): string {
  const i = name.lastIndexOf('.');
  return i < 0 ? name : name.slice(i + 1);
}

function withSoa(ev: Evaluation, qname: string): Evaluation {
  if (ev.decision.action !== 'deny' || ev.soaZone !== '' || qname === '') return ev;
  return { ...ev, soaZone: lastLabel(qname) };
}

/** `ev` with its decision logged. */
function logged(ev: Evaluation): Evaluation {
  return Object.freeze({ ...ev, decision: Object.freeze({ ...ev.decision, log: true }) });
}

/** The evaluation for `qname` (sidecar form: lower case, no trailing dot); `labels` are its {@link nameLabels}. */
export function evaluate(compiled: CompiledPolicy, qname: string, labels: readonly string[] = nameLabels(qname)): Evaluation {
  const platform = compiled.platformRules.lookupLabels(labels);
  if (platform !== undefined && platform.decision.action === 'deny') return platform;
  if (platform === undefined && compiled.platformDefault !== undefined) return withSoa(compiled.platformDefault, qname);
  const tenant = compiled.tenantRules.lookupLabels(labels);
  // `log` is an OR across layers: a platform rule that says log is logged whatever the tenant's rule decides.
  if (tenant !== undefined) return platform?.decision.log && !tenant.decision.log ? logged(tenant) : tenant;
  if (platform !== undefined) return platform;
  return withSoa(compiled.tenantDefault, qname);
}
