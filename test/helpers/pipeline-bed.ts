/**
 * A sidecar pipeline without sockets, for stage tests that need the stages
 * around them: the real autopath (optional), policy, families, split and
 * cache stages, and a forward stage answering from a table and recording
 * every question that reaches it.
 */
import * as packet from 'dns-packet';
import { Registry } from 'prom-client';
import { AutopathMetrics } from '../../sidecar/autopath/metrics.ts';
import type { SearchConfig } from '../../sidecar/autopath/search.ts';
import { createAutopathStage } from '../../sidecar/autopath/stage.ts';
import { CacheStage } from '../../sidecar/cache/stage.ts';
import { RCode } from '../../sidecar/dns/constants.ts';
import { synthesize, type SynthRecord } from '../../sidecar/dns/reply.ts';
import { readQuery } from '../../sidecar/dns/wire.ts';
import { compose } from '../../sidecar/pipeline/compose.ts';
import type { Outcome, QueryContext, Stage } from '../../sidecar/pipeline/stage.ts';
import { createFamiliesStage } from '../../sidecar/policy/families.ts';
import { createSplitStage } from '../../sidecar/policy/split.ts';
import { createPolicyStage, syntheticSoa } from '../../sidecar/policy/stage.ts';
import { Router } from '../../sidecar/route/classify.ts';
import { compiled, decode, type Decoded } from '../sidecar/policy/helpers.ts';

/** What the table upstream knows: name → type → address; a name absent is NXDOMAIN, a type absent NODATA. */
export type Table = Readonly<Record<string, Partial<Record<'A' | 'AAAA', string>>>>;

/** What {@link pipelineBed} takes. */
export interface BedOptions {
  readonly table: Table;
  /** The tenant policy's `spec`, as YAML (see policy/helpers.ts). */
  readonly policy?: string;
  /** The platform policy's `spec`. */
  readonly platform?: string;
  /** Autopath's search config; none: no autopath stage. */
  readonly search?: SearchConfig;
  /** Names whose upstream exchange fails. */
  readonly fail?: (name: string) => boolean;
}

/** A running bed. */
export interface Bed {
  /** Asks a question as a client would (RD set unless `rd: false`) and decodes the answer. */
  ask(name: string, type?: 'A' | 'AAAA' | 'TXT', opts?: { rd?: boolean; klass?: 'IN' | 'CH' }): Promise<{ reply: Decoded; outcome: Outcome }>;
  /** The questions that reached the upstream, as `name TYPE`, in order. */
  readonly asked: string[];
  /** The registry the autopath metrics are declared in. */
  readonly metrics: Registry;
}

const ZONES = ['cluster.local', 'in-addr.arpa', 'ip6.arpa'];

/** A forward stage answering from `table`, with an SOA (minimum 30) in negative answers. */
function tableForward(table: Table, asked: string[], fail?: (name: string) => boolean): Stage {
  return {
    name: 'forward',
    async handle(ctx: QueryContext): Promise<Outcome> {
      const q = ctx.query;
      const type = q.qtype === 28 ? 'AAAA' : 'A';
      asked.push(`${q.qname} ${type}`);
      if (fail?.(q.qname)) throw new Error('upstream down');
      const entry = table[q.qname];
      const soa = [syntheticSoa(q.qname.split('.').slice(-2).join('.'), 30)];
      let body: Buffer;
      let rcode: number = RCode.NOERROR;
      if (entry === undefined) body = synthesize(ctx.wire, q, { rcode: (rcode = RCode.NXDOMAIN), authorities: soa });
      else if (entry[type] === undefined) body = synthesize(ctx.wire, q, { rcode, authorities: soa });
      else body = synthesize(ctx.wire, q, { rcode, answers: [{ name: q.qname, type, class: 'IN', ttl: 60, data: entry[type] } as SynthRecord] });
      return { kind: 'reply', body, rcode, source: 'upstream', reason: 'default' };
    },
  };
}

/** Builds a pipeline of the real stages over a table upstream. */
export function pipelineBed(options: BedOptions): Bed {
  const asked: string[] = [];
  const holder = { current: compiled(options.policy ?? 'rules: []', options.platform) };
  const router = new Router(holder, ZONES);
  const registry = new Registry();
  const cache = new CacheStage({
    config: { maxEntries: 1000, maxBytes: 1 << 20, minTtl: 0, maxTtl: 86_400, negativeMaxTtl: 3600, clusterNegativeMaxTtl: 5, staleMaxAge: 0, staleMaxPerSecond: 0, staleAnswerTimeoutMs: 0 },
  });
  const search = options.search;
  const chain = compose(
    {
      ...(search ? { autopath: createAutopathStage({ search, router, metrics: new AutopathMetrics(registry) }) } : {}),
      policy: createPolicyStage(router),
      families: createFamiliesStage(holder),
      split: createSplitStage(async () => Buffer.alloc(0)),
      cache,
      forward: tableForward(options.table, asked, options.fail),
    },
    () => {},
  );
  return {
    asked,
    metrics: registry,
    async ask(name, type = 'A', opts = {}) {
      const wire = packet.encode({ id: 7, type: 'query', flags: opts.rd === false ? 0 : packet.RECURSION_DESIRED, questions: [{ name, type, class: opts.klass ?? 'IN' } as packet.Question] });
      const q = readQuery(wire).query!;
      const route = router.route(q.qname);
      const outcome = await chain({ wire, query: q, proto: 'udp', signal: new AbortController().signal, startedAt: 0, route, decision: route.evaluation.decision, internal: false });
      return { reply: decode(outcome.body), outcome };
    },
  };
}
