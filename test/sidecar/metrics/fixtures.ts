/**
 * Shared fixtures of the metrics tests: query contexts and outcomes without sockets.
 */
import { performance } from 'node:perf_hooks';
import type { TestContext } from 'node:test';
import { Gauge, Registry } from 'prom-client';
import { readQuery } from '../../../sidecar/dns/wire.ts';
import { SidecarMetrics } from '../../../sidecar/metrics/telemetry.ts';
import type { Decision, Outcome, Proto, QueryContext, Source } from '../../../sidecar/pipeline/stage.ts';
import { encodeQuery } from '../../helpers/dns-client.ts';
import { internalRoute } from '../../../sidecar/route/classify.ts';
import { Gates } from '../../helpers/events.ts';

/** A client query context for `name`/`type`, received now. */
export function ctxFor(name: string, type = 'A', proto: Proto = 'udp'): QueryContext {
  const wire = encodeQuery({ name, type });
  const read = readQuery(wire);
  if (read.rejected) throw new Error(`fixture query rejected: ${JSON.stringify(read.rejected)}`);
  return { wire, query: read.query, proto, signal: new AbortController().signal, startedAt: performance.now(), route: internalRoute('default'), internal: false };
}

/** An outcome with an empty body. */
export function outcome(source: Source, rcode: number, reason = 'test', upstream?: string): Outcome {
  return { kind: 'reply', body: Buffer.alloc(12), rcode, source, reason, ...(upstream ? { upstream } : {}) };
}

/** A `next` that sets `decision` (as the policy stage would) and answers `out`. */
export function nextWith(out: Outcome, decision?: Decision) {
  return async (ctx: QueryContext): Promise<Outcome> => {
    if (decision) ctx.decision = decision;
    return out;
  };
}

/** Fresh metrics on a fresh registry, without process metrics. */
export function freshMetrics(tenant = 'team-a'): SidecarMetrics {
  return new SidecarMetrics(new Registry(), { tenant, version: '0.0.0-test', processMetrics: false });
}

/** The value of one series in the text exposition, or undefined when absent. */
export async function sample(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const text = await registry.metrics();
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[3] ?? '').matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[4]);
  }
  return undefined;
}

/**
 * A registry with one gauge, `held_renderings`, that counts the renderings
 * of it: the nth waits at gate `collect-<n>` until the test opens it (all are
 * opened in `t.after`).
 */
export function heldRegistry(t: TestContext): { registry: Registry; gates: Gates; renderings: () => number } {
  const gates = new Gates();
  t.after(() => gates.openAll());
  const registry = new Registry();
  let n = 0;
  new Gauge({
    name: 'held_renderings',
    help: 'renderings of this registry so far',
    registers: [registry],
    async collect() {
      this.set(++n);
      await gates.pass(`collect-${n}`);
    },
  });
  return { registry, gates, renderings: () => n };
}
