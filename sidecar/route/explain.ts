/**
 * `policy explain` as a pure function: the classification of a question and
 * the answer the sidecar gives it. Local answers (denies, split zones) are
 * built by the very functions the pipeline's stages call, then decoded, so
 * explain cannot say one thing while the sidecar answers another; upstream
 * answers are named by the group they go to.
 */
import * as packet from 'dns-packet';
import types from 'dns-packet/types.js';
import { RCode, RRType } from '../dns/constants.ts';
import { buildQuery } from '../dns/query.ts';
import type { Outcome, QueryContext } from '../pipeline/stage.ts';
import type { CompiledPolicy, Evaluation } from '../policy/compile.ts';
import { localSplitOutcome } from '../policy/split.ts';
import { denyOutcome } from '../policy/stage.ts';
import { classify, type Route } from './classify.ts';
import { showUrl } from '../redact.ts';

/** What {@link explainQuestion} found for one question. */
export interface Explanation {
  /** The question, sidecar name form. */
  readonly qname: string;
  readonly qtype: number;
  /** The classification the pipeline routes on. */
  readonly route: Route;
  /** The answer the sidecar gives without an upstream (deny, static split, CNAME asked of a split CNAME zone). */
  readonly local?: Outcome;
  /**
   * For answers that need an upstream: the group the query (or a split
   * zone's CNAME target) is sent to.
   */
  readonly group?: string;
}

/** Explains `qname`/`qtype` under `policy` and the cluster zones. */
export function explainQuestion(policy: CompiledPolicy, clusterZones: readonly string[], qname: string, qtype: number): Explanation {
  const { wire, query } = buildQuery(qname, qtype);
  const route = classify(policy, clusterZones, query.qname);
  const ctx: QueryContext = { wire, query, proto: 'udp', signal: AbortSignal.abort(), startedAt: 0, route, decision: route.evaluation.decision, internal: false };
  const base = { qname: query.qname, qtype, route };
  switch (route.kind) {
    case 'deny': {
      const ev = route.evaluation;
      return { ...base, local: denyOutcome(ctx, ev.decision.rule, ev.response!, ev.soaZone) };
    }
    case 'split': {
      const local = localSplitOutcome(ctx, route.split);
      return local !== undefined ? { ...base, local } : { ...base, group: route.split.zone.resolveVia };
    }
    default:
      return { ...base, group: route.group };
  }
}

/** The name of a type number (`A`, `TYPE65280`). */
export function typeText(t: number): string {
  return types.toString(t);
}

function zoneText(zone: string): string {
  return zone === '' ? '.' : zone;
}

/** Names of the Extended DNS Error codes the sidecar uses. */
const EDE_NAMES: Readonly<Record<number, string>> = { 0: 'Other', 3: 'Stale Answer', 15: 'Blocked', 23: 'Network Error' };

function who(ev: Evaluation): string {
  if (ev.isolatedNamespace !== undefined) {
    return `platform service-discovery isolation, rule "${ev.ruleName}" (namespace ${ev.isolatedNamespace} is neither the pod's, nor its tenant's, nor shared)`;
  }
  if (ev.layer === 'default') return 'the tenant default action';
  if (ev.ruleName === '') return 'the platform default action';
  return `${ev.layer} rule "${ev.ruleName}" (glob ${ev.ruleGlob})`;
}

/** A local answer in words: rcode, records by type with their TTL, the SOA, the EDE. */
export function describeOutcome(outcome: Outcome, sinkhole: boolean): string {
  const m = packet.decode(outcome.body) as packet.DecodedPacket & { rcode?: string };
  const extras: string[] = [];
  const soa = (m.authorities ?? []).find((r) => r.type === 'SOA');
  if (soa) extras.push(`SOA ${zoneText(soa.name)}`);
  if (outcome.ede) extras.push(`EDE ${outcome.ede.code} (${EDE_NAMES[outcome.ede.code] ?? 'code ' + outcome.ede.code})`);
  const tail = extras.length > 0 ? ` with ${extras.join(' and ')}` : '';
  const answers = (m.answers ?? []) as { type: string; ttl?: number; data: unknown }[];
  if (outcome.rcode !== RCode.NOERROR) return `${m.rcode ?? outcome.rcode}${tail}`;
  if (answers.length === 0) return `NODATA (NOERROR, no answer)${tail}`;
  const byType = new Map<string, { data: string[]; ttl: number }>();
  for (const a of answers) {
    const entry = byType.get(a.type) ?? { data: [], ttl: a.ttl ?? 0 };
    entry.data.push(String(a.data));
    byType.set(a.type, entry);
  }
  const records = [...byType].map(([type, e]) => `${type} ${e.data.join(', ')} (TTL ${e.ttl})`).join(', ');
  return `${sinkhole ? 'sinkhole ' : ''}${records}${tail}`;
}

/** The explanation as `key: value` lines (the output of `policy explain`). */
export function renderExplanation(e: Explanation): string {
  const r = e.route;
  const ev = r.evaluation;
  const lines = [`query: ${zoneText(e.qname)} ${typeText(e.qtype)}`];
  lines.push(`decided by: ${who(ev)}`);
  lines.push(`action: ${ev.decision.action}${ev.decision.log && ev.decision.action !== 'log' ? ' (logged)' : ''}`);
  switch (r.kind) {
    case 'deny':
      lines.push(`answer: ${describeOutcome(e.local!, ev.response?.type === 'sinkhole')}`);
      break;
    case 'split': {
      const z = r.split.zone;
      lines.push(`split zone: ${z.layer} "${z.name}" (glob ${r.split.glob})`);
      lines.push(
        e.local !== undefined
          ? `answer: ${describeOutcome(e.local, false)}`
          : `answer: CNAME ${z.cname} (TTL ${z.ttl}) then ${typeText(e.qtype)} of ${z.cname} via group ${z.resolveVia}`,
      );
      break;
    }
    case 'cluster':
      lines.push(`answer: forwarded to the cluster DNS (cluster zone ${zoneText(r.zone)})`);
      break;
    case 'forward':
      // Upstreams as shown everywhere: scheme, host and port (a URL's user info, path and query may be secrets).
      lines.push(`answer: forwarded to zone ${r.forward!.zone.name} (${r.zone}) via ${r.forward!.zone.upstreams.map(showUrl).join(', ')}`);
      break;
    default:
      lines.push('answer: allowed: forwarded to the default upstreams');
  }
  return lines.join('\n') + '\n';
}

/** A query type by name (`A`, `aaaa`, `TYPE65`) or number; A when absent. */
export function typeNumber(t: string | number | undefined): number | undefined {
  if (t === undefined) return RRType.A;
  if (typeof t === 'number') return t;
  if (/^\d+$/.test(t)) return Number(t);
  const n = types.toType(t.toUpperCase());
  return n === 0 ? undefined : n;
}
