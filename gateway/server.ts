/**
 * The gateway process: the sidecar's UDP and TCP listeners (sidecar/listener/)
 * in front of the authoritative lookup, the data rebuilt whenever the objects
 * change, the metrics server, and rejected claims logged, counted and
 * reported. Wiring only: the deciding is in injector/gateway-sources.ts, injector/gateway-ownership.ts and zone.ts.
 */
import { performance } from 'node:perf_hooks';
import { Registry } from 'prom-client';
import { CLASS_IN, EDECode, RCode, RRType } from '../sidecar/dns/constants.ts';
import type { Answer } from 'dns-packet';
import { encodeRecord, synthesize } from '../sidecar/dns/reply.ts';
import { ErrorCodes, SidecarError, describeError, errorCode } from '../sidecar/errors.ts';
import { bindListeners } from '../sidecar/listener/bind.ts';
import type { HostPort } from '../sidecar/listener/address.ts';
import { InflightGate, type HandlerDeps } from '../sidecar/listener/handle.ts';
import { throttledLogger, type Logger } from '../sidecar/log.ts';
import { startMetricsServer, type HttpEndpoint } from '../sidecar/metrics/http.ts';
import type { Outcome, QueryContext } from '../sidecar/pipeline/stage.ts';
import { internalRoute } from '../sidecar/route/classify.ts';
import { GatewayMetrics } from './metrics.ts';
import { decide, type Decision, type Rejection } from '../injector/gateway-ownership.ts';
import { readSources, type SourceObjects } from '../injector/gateway-sources.ts';
import { buildZones, REFUSED, SerialClock, type LookupResult, type ZoneSet, type ZoneSettings } from './zone.ts';

/** Where rejected claims are reported besides the log and the counter (Kubernetes Events, when the API is used). */
export type RejectionSink = (rejection: Rejection) => void;

/** What the gateway runs with. */
export interface GatewayOptions {
  /** UDP and TCP listen addresses. */
  readonly listen: readonly HostPort[];
  readonly zone: ZoneSettings;
  /** `--tenant-domain`: tenant → domains, beside what ClusterDNSPolicies assign. */
  readonly tenantDomains: ReadonlyMap<string, readonly string[]>;
  /** The namespace label naming a tenant. */
  readonly tenantLabel: string;
  /** Metrics and probes ADDR:PORT; none when undefined. */
  readonly metrics?: string;
  readonly log: Logger;
  readonly version: string;
  /** Clock for SOA serials (ms since the epoch); default Date.now. */
  readonly now?: () => number;
  /** TCP limits, as the sidecar's flags; defaults below. */
  readonly tcp?: { readonly idleTimeoutMs: number; readonly maxConnections: number; readonly maxPipelined: number };
  /** Most queries in flight at once. */
  readonly maxInflight?: number;
  readonly onRejection?: RejectionSink;
  /** Collect prom-client's process metrics (default true). */
  readonly processMetrics?: boolean;
}

/** A running gateway. */
export interface Gateway {
  /** The addresses served (ports resolved). */
  readonly addresses: readonly HostPort[];
  /** The metrics endpoint, when one was asked for. */
  readonly metricsAddress?: HostPort;
  readonly registry: Registry;
  /** Replaces the objects the data comes from; returns the new decision. */
  update(objects: SourceObjects): Decision;
  /** The zones served now. */
  zones(): ZoneSet;
  /** Closes the listeners and the metrics server. Idempotent. */
  close(): Promise<void>;
}

/** How often one kind of rejection (tenant and reason) is logged at most. */
const REJECTION_LOG_INTERVAL_MS = 60_000;

const ROUTE = internalRoute('default');
const NOT_AUTHORITATIVE = Object.freeze({ code: EDECode.NOT_AUTHORITATIVE, text: '' });
const PROHIBITED = Object.freeze({ code: EDECode.PROHIBITED, text: '' });

/** Builds the zones from `objects`: reads the claims, decides ownership, builds the zones. */
export function buildGatewayData(objects: SourceObjects, options: Pick<GatewayOptions, 'zone' | 'tenantDomains' | 'tenantLabel'>, clock: SerialClock): { decision: Decision; zones: ZoneSet } {
  const view = readSources(objects, options.tenantLabel, options.tenantDomains);
  const reserved = new Set(options.zone.nameServers.map((ns) => ns.name));
  const decision = decide(view, { zones: options.zone.zones, reserved });
  return { decision, zones: buildZones(decision.published, options.zone, clock) };
}

/** Starts the gateway on `objects`; `update` replaces them later. */
export async function startGateway(objects: SourceObjects, options: GatewayOptions): Promise<Gateway> {
  const { log } = options;
  const registry = new Registry();
  const metrics = new GatewayMetrics(registry, { version: options.version, processMetrics: options.processMetrics });
  const clock = new SerialClock(options.now);
  const logRejection = throttledLogger(log, REJECTION_LOG_INTERVAL_MS);
  let rejectedBefore = new Set<string>();
  let zones: ZoneSet | undefined;
  let answers: AnswerCache;

  const update = (next: SourceObjects): Decision => {
    const built = buildGatewayData(next, options, clock);
    zones = built.zones;
    answers = new AnswerCache(built.zones);
    const perTenant = new Map<string, number>();
    for (const p of built.decision.published) perTenant.set(p.tenant, (perTenant.get(p.tenant) ?? 0) + p.a.length + p.aaaa.length + (p.cname ? 1 : 0));
    metrics.setRecords(perTenant);
    const now = new Set<string>();
    for (const r of built.decision.rejected) {
      const key = `${r.claim.ref.kind}/${r.claim.ref.namespace}/${r.claim.ref.name}\0${r.claim.host}\0${r.reason}`;
      now.add(key);
      if (rejectedBefore.has(key)) continue;
      metrics.rejection(r.claim.tenant, r.reason);
      logRejection(`${r.claim.tenant}\0${r.reason}`, 'warn', 'claim not published', {
        tenant: r.claim.tenant,
        reason: r.reason,
        object: `${r.claim.ref.kind}/${r.claim.ref.namespace}/${r.claim.ref.name}`,
        host: r.claim.host,
        detail: r.message,
      });
      options.onRejection?.(r);
    }
    rejectedBefore = now;
    log('info', 'gateway data built', { zones: built.zones.zones.map((z) => ({ zone: z.apex, serial: z.serial })), names: built.decision.published.length, rejected: built.decision.rejected.length });
    return built.decision;
  };
  update(objects);

  const fail = (err: unknown, ctx: QueryContext): Outcome => {
    log('error', 'gateway: answering failed', { code: errorCode(err), error: describeError(err), qtype: ctx.query.qtype });
    metrics.request('', RCode.SERVFAIL, '');
    return { kind: 'reply', body: synthesize(ctx.wire, ctx.query, { rcode: RCode.SERVFAIL }), rcode: RCode.SERVFAIL, source: 'local', reason: 'error' };
  };
  const deps: HandlerDeps = {
    chain: (ctx) => {
      const q = ctx.query;
      let res = q.qclass === CLASS_IN ? answers.lookup(q.qname, q.qtype) : REFUSED;
      // No zone transfers: AXFR over UDP does not exist (RFC 5936 §4.2), NOTIMP as nsd; else REFUSED, EDE 18 Prohibited.
      if (res.transfer && ctx.proto === 'udp' && q.qtype === RRType.AXFR) res = { ...res, rcode: RCode.NOTIMP };
      metrics.request(res.zone, res.rcode, res.tenant);
      const body = synthesize(ctx.wire, q, res);
      // REFUSED outside the zones: EDE 20 Not Authoritative (RFC 8914 §4.21), as nsd says.
      const ede = res.rcode !== RCode.REFUSED ? undefined : res.transfer ? PROHIBITED : NOT_AUTHORITATIVE;
      return { kind: 'reply', body, rcode: res.rcode, source: 'local', reason: res.zone, ...(ede ? { ede } : {}) };
    },
    router: { route: () => ROUTE },
    gate: new InflightGate(options.maxInflight ?? 4096),
    signal: new AbortController().signal,
    fail,
    observe: (_ctx, outcome) => metrics.request('', outcome.rcode, ''),
    noRecursion: true,
  };
  const listeners = await bindListeners(options.listen, deps, options.tcp ?? { idleTimeoutMs: 10_000, maxConnections: 1024, maxPipelined: 128 }, log);
  let metricsServer: HttpEndpoint | undefined;
  try {
    if (options.metrics !== undefined) {
      metricsServer = await startMetricsServer({
        address: options.metrics,
        registry,
        log,
        probes: { ready: () => ({ ready: zones !== undefined, policyLoaded: zones !== undefined, groups: {}, notReady: zones ? [] : ['objects not loaded'] }) },
      });
    }
  } catch (err) {
    await listeners.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  log('info', 'gateway serving', { listen: listeners.addresses.map((a) => `${a.host}:${a.port}`), zones: options.zone.zones, started: Math.round(performance.now()) });
  return {
    addresses: listeners.addresses,
    ...(metricsServer ? { metricsAddress: metricsServer.address } : {}),
    registry,
    update,
    zones: () => zones!,
    close() {
      closing ??= Promise.all([listeners.close(), metricsServer?.close()]).then(() => undefined);
      return closing;
    },
  };
}

/** Most answers an {@link AnswerCache} keeps; it forgets them all when full. */
const ANSWER_CACHE_ENTRIES = 20_000;

/**
 * The lookups of one version of the zones, with their records already in wire
 * form (dns-packet encodes a record in microseconds: most of an answer's cost;
 * test/bench/README.md, "The gateway"). A record owned by the question's name
 * points at the question, so one entry serves every spelling of the name.
 * Replaced whole when the data changes; bounded (random names asked for cannot
 * grow it past {@link ANSWER_CACHE_ENTRIES}).
 */
class AnswerCache {
  readonly #zones: ZoneSet;
  readonly #answers = new Map<string, LookupResult>();

  constructor(zones: ZoneSet) {
    this.#zones = zones;
  }

  lookup(qname: string, qtype: number): LookupResult {
    const key = `${qtype}\0${qname}`;
    let res = this.#answers.get(key);
    if (res === undefined) {
      const r = this.#zones.lookup(qname, qtype);
      const wire = (records: readonly (Answer | Buffer)[]) => records.map((rr) => (Buffer.isBuffer(rr) ? rr : encodeRecord(rr, qname)));
      res = { ...r, answers: wire(r.answers), authorities: wire(r.authorities), additionals: wire(r.additionals) };
      if (this.#answers.size >= ANSWER_CACHE_ENTRIES) this.#answers.clear();
      this.#answers.set(key, res);
    }
    return res;
  }
}

/** Checks the zone settings before anything starts; throws CONFIG_INVALID naming the flag. */
export function checkZoneSettings(s: ZoneSettings): void {
  const bad = (msg: string) => {
    throw new SidecarError(ErrorCodes.CONFIG_INVALID, msg);
  };
  if (s.zones.length === 0) bad('--zone: at least one zone to serve is needed');
  if (s.nameServers.length === 0) bad('--ns: at least one name server name is needed (the NS records and the SOA MNAME of each zone)');
  if (!Number.isInteger(s.ttl) || s.ttl < 0 || s.ttl > 2_147_483_647) bad(`--ttl: ${s.ttl} is not a TTL in seconds (0 to 2^31-1)`);
  for (const ns of s.nameServers) {
    const inside = s.zones.some((z) => ns.name === z || ns.name.endsWith(`.${z}`));
    if (inside && ns.addresses.length === 0) bad(`--ns ${ns.name}: a name server inside a served zone needs its addresses (--ns ${ns.name}=IP[,IP])`);
  }
}
