/**
 * The cache stage: answers from the per-pod {@link CacheStore}, coalesces
 * identical in-flight queries, stores what the upstreams answer, and serves
 * stale answers when they fail (RFC 8767), when that is switched on.
 */
import { EDECode, Flags, HEADER_LENGTH, RCode, RRType } from '../dns/constants.ts';
import { scanReply } from '../dns/records.ts';
import type { ParsedQuery } from '../dns/wire.ts';
import { ErrorCodes, errorCode, type ErrorCode } from '../errors.ts';
import { after } from '../pipeline/deferred.ts';
import { isPending, type Answer, type Next, type Outcome, type QueryContext, type Stage } from '../pipeline/stage.ts';
import { CacheStore, type CacheConfig, type EvictReason, type HitInfo } from './store.ts';
import { mapWithout } from '../runtime/tables.ts';

/** Options of {@link CacheStage}. */
export interface CacheStageOptions {
  /** Limits and TTL clamps (`cache.*` of the sidecar config). */
  readonly config: CacheConfig;
  /** The clock in milliseconds; defaults to `Date.now`. */
  readonly clock?: () => number;
  /** Seconds an expired entry may still be served stale; 0 (default) switches serve-stale off. */
  readonly staleMaxAgeSec?: number;
  /** Most stale answers per entry per second; 0 (default) means no cap. */
  readonly staleMaxPerSecond?: number;
  /**
   * Milliseconds a miss with a stale entry waits for the upstreams before the
   * stale answer is sent (RFC 8767 §5, the client response timer); the
   * upstream exchange goes on in the background and refreshes the entry.
   * 0 (default): wait for the upstreams' own deadline.
   */
  readonly staleAnswerTimeoutMs?: number;
  /** Called for every entry evicted or expired (for metrics). */
  readonly onEvict?: (reason: EvictReason) => void;
}

/** The Extended DNS Error attached to stale answers (RFC 8914 §4.4, RFC 8767). */
export const STALE_EDE = { code: EDECode.STALE_ANSWER, text: 'stale answer' } as const;

/** Upstream failures after which a stale answer may be served (not ABORTED: the client is gone). */
const STALE_ON: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCodes.UPSTREAM_TIMEOUT,
  ErrorCodes.UPSTREAM_CONNECT,
  ErrorCodes.UPSTREAM_BAD_REPLY,
  ErrorCodes.UPSTREAM_TLS,
  ErrorCodes.UPSTREAM_HTTP,
  ErrorCodes.UPSTREAM_GROUP_FAILED,
  ErrorCodes.UPSTREAM_SERVFAIL,
]);

/**
 * The part of a query's cache key beside its name: type, class, and the DO
 * and CD bits (a reply to a DNSSEC-aware or checking-disabled query differs
 * from the plain one, RFC 4035 §3.2), packed into one number that stays a
 * small integer for class IN. The AD bit is not in the key: the sidecar
 * always asks with AD=1 and gives each client AD only when it asked for it
 * (listener/handle.ts).
 */
export function subKey(q: ParsedQuery): number {
  const bits = (q.dnssecOk ? 1 : 0) | (q.flags & Flags.CD ? 2 : 0);
  return q.qtype * 4 + bits + (q.qclass - 1) * 0x40000;
}

/**
 * The name part of a context's cache key: the query name, prefixed by the
 * upstream group for internal queries (sent through the group their route
 * names, whose answers may differ from the normally routed ones).
 */
export function keyName(ctx: QueryContext): string {
  return ctx.internal && ctx.route.kind !== 'deny' && ctx.route.kind !== 'split' ? `${ctx.route.group}\u0000${ctx.query.qname}` : ctx.query.qname;
}

/**
 * The part beside the name ({@link keyName}) of the key of an exchange in
 * flight, which identical queries share: the cache key's {@link subKey} plus
 * RD. Queries share an exchange only when the upstream would answer them
 * alike, and a non-recursive query (RD=0, a health probe) is answered
 * differently from a recursive one. Name and number apart, as in the store:
 * no key string is built and hashed per miss.
 */
export function flightSub(q: ParsedQuery): number {
  return subKey(q) * 2 + (q.flags & Flags.RD ? 1 : 0);
}

/** A miss being resolved by its leader, and what the queries that wait for it share. */
interface Flight {
  /**
   * The leader's query, until the flight lands. The flight then lets go of it and of {@link shared}: the
   * long-lived #inflight Map may still point at a landed flight from a table it rehashed away from (V8 keeps
   * such tables until a full collection), and a flight that holds nothing keeps nothing else alive with it
   * (runtime/tables.ts, IdTable).
   */
  ctx: QueryContext | undefined;
  readonly name: string;
  readonly sub: number;
  /** The next flight of the same name (another {@link flightSub}). */
  next: Flight | undefined;
  /** The leader's signal: when it aborts, its failure says nothing about the waiters' queries. */
  readonly signal: AbortSignal;
  /** The leader's result for the waiters; made when the first one comes (most misses have none). */
  shared: PromiseWithResolvers<Shared> | undefined;
}

interface Shared {
  readonly outcome: Outcome;
  /** A copy of the outcome's body taken before the leader handed it on (the receiver owns the original). */
  readonly snapshot: Buffer;
}

/**
 * Writes the client's view into a reply body taken from the cache or from
 * another query: its ID, its spelling of the question (0x20 case, RFC 5452
 * §9.3) and its RD and CD bits. AD stays as the upstream gave it: the
 * listener passes it on only to clients that asked (listener/handle.ts).
 */
export function personalize(body: Buffer, ctx: QueryContext): void {
  const q = ctx.query;
  body[0] = q.id >>> 8;
  body[1] = q.id & 0xff;
  const mask = Flags.RD | Flags.CD;
  const flags = (((body[2]! << 8) | body[3]!) & ~mask) | (q.flags & mask);
  body[2] = flags >>> 8;
  body[3] = flags & 0xff;
  // Same key, same name: the echoed question has the client's length. A byte
  // loop: for a question of a few dozen bytes it is several times cheaper than Buffer#copy.
  if (body[5] === 1 && body[4] === 0 && body.length >= q.questionEnd) {
    const wire = ctx.wire;
    for (let i = HEADER_LENGTH; i < q.questionEnd; i++) body[i] = wire[i]!;
  }
}

/** The `cache` pipeline stage. The store is public for the admin endpoints (stats, flush). */
export class CacheStage implements Stage {
  readonly name = 'cache';
  /** The store, for `/cache` stats and flush. */
  readonly store: CacheStore;
  readonly #config: CacheConfig;
  /** Exchanges in flight: name → the first of its flights, chained by `next`; a new Map when it empties (runtime/tables.ts). */
  #inflight = new Map<string, Flight>();
  #flights = 0;
  readonly #staleAnswerTimeoutMs: number;
  #coalesced = 0;
  /** Reused for every lookup: the stage reads it synchronously right after `get`. */
  readonly #info: HitInfo = { rcode: 0, questionEnd: 0, remainingTtl: 0, names: undefined, named: false };

  constructor(options: CacheStageOptions) {
    this.#config = options.config;
    this.#staleAnswerTimeoutMs = options.staleAnswerTimeoutMs ?? 0;
    this.store = new CacheStore({
      config: options.config,
      now: options.clock,
      staleMaxAgeSec: options.staleMaxAgeSec,
      staleMaxPerSecond: options.staleMaxPerSecond,
      onEvict: options.onEvict,
    });
  }

  /** Queries being resolved right now (one per key, however many clients wait). */
  get inflight(): number {
    return this.#flights;
  }

  #flight(name: string, sub: number): Flight | undefined {
    for (let f = this.#inflight.get(name); f !== undefined; f = f.next) if (f.sub === sub) return f;
    return undefined;
  }

  #land(flight: Flight): void {
    const head = this.#inflight.get(flight.name);
    this.#flights--;
    if (head === flight) {
      if (flight.next !== undefined) this.#inflight.set(flight.name, flight.next);
      else this.#inflight = mapWithout(this.#inflight, flight.name);
      return;
    }
    for (let f = head; f !== undefined; f = f.next) {
      if (f.next === flight) {
        f.next = flight.next;
        return;
      }
    }
  }

  /** Queries answered by waiting for an identical one in flight instead of going upstream themselves. */
  get coalesced(): number {
    return this.#coalesced;
  }

  handle(ctx: QueryContext, next: Next): Answer {
    const q = ctx.query;
    const info = this.#info;
    const name = keyName(ctx);
    const body = this.store.get(name, subKey(q), info);
    if (body !== undefined && info.questionEnd === q.questionEnd) {
      personalize(body, ctx);
      return info.names === undefined
        ? { kind: 'reply', body, rcode: info.rcode, source: 'cache', reason: 'hit' }
        : { kind: 'reply', body, rcode: info.rcode, source: 'cache', reason: 'hit', names: info.names };
    }
    // A name with no entry at all (the usual miss) has no other-family NXDOMAIN and no stale answer either.
    const named = info.named === true;
    if (named) {
      const nxdomain = this.#otherFamilyNxdomain(ctx, name);
      if (nxdomain !== undefined) return nxdomain;
    }
    const flight = this.#flight(name, flightSub(q));
    if (flight === undefined) return this.#lead(ctx, next, name, named);
    return this.#staleInTime(ctx, this.#wait(ctx, next, flight), named);
  }

  /**
   * The answer to an A or AAAA query for a name whose other address type is
   * a fresh NXDOMAIN in the cache: the name does not exist, whatever the type
   * (RFC 8020 §2, RFC 2308 §5), so that NXDOMAIN (its SOA, its remaining
   * TTL) answers the question; undefined otherwise. A client's AAAA query
   * right after its A query for a name that does not exist (a search walk)
   * thus never leaves the pod. Counted as a miss, then a hit. `name` is the
   * name part of the query's cache key ({@link keyName}).
   */
  #otherFamilyNxdomain(ctx: QueryContext, name: string): Outcome | undefined {
    const q = ctx.query;
    if (q.qtype !== RRType.A && q.qtype !== RRType.AAAA) return undefined;
    const sub = subKey(q) + (q.qtype === RRType.A ? RRType.AAAA - RRType.A : RRType.A - RRType.AAAA) * 4;
    if (!this.store.hasNxdomain(name, sub)) return undefined;
    const info = this.#info;
    const body = this.store.get(name, sub, info);
    if (body === undefined || info.questionEnd !== q.questionEnd) return undefined;
    // The client's question (its type included) replaces the stored one: same name, same length.
    personalize(body, ctx);
    return { kind: 'reply', body, rcode: RCode.NXDOMAIN, source: 'cache', reason: 'hit' };
  }

  /**
   * Resolves a miss through `next`, with the stale answer timer
   * ({@link #staleInTime}).
   */
  #lead(ctx: QueryContext, next: Next, name: string, named: boolean): Answer {
    return this.#staleInTime(ctx, this.#resolve(ctx, next, name), named);
  }

  /**
   * `work`, or a stale answer when one exists and `work` takes longer than the
   * stale answer timeout: the client then gets the stale answer at once and
   * the exchange goes on in the background, where its answer refreshes the
   * entry (RFC 8767 §5, the client response timer). Every client query gets
   * this timer, the ones that joined an exchange in flight included.
   */
  #staleInTime(ctx: QueryContext, work: Answer, named: boolean): Answer {
    if (!named || !isPending(work) || this.#staleAnswerTimeoutMs <= 0 || !this.store.hasStale(keyName(ctx), subKey(ctx.query))) return work;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.#staleAnswerTimeoutMs);
    });
    return Promise.race([work, late]).then((first) => {
      if (first !== undefined) {
        clearTimeout(timer);
        return first;
      }
      const stale = this.#stale(ctx);
      if (stale === undefined) return work;
      work.then(undefined, () => {}); // The background refresh's failure is the group's to report.
      return stale;
    });
  }

  /**
   * Resolves a miss through `next`, stores the answer, and shares it with the
   * waiters. Callbacks on the pending answer rather than an async function: no
   * promise of its own per miss; an answer `next` gave at once is stored at once.
   */
  #resolve(ctx: QueryContext, next: Next, name: string): Answer {
    const flight: Flight = { ctx, name, sub: flightSub(ctx.query), next: this.#inflight.get(name), signal: ctx.signal, shared: undefined };
    this.#inflight.set(name, flight);
    this.#flights++;
    let answer: Answer;
    try {
      answer = next(ctx);
    } catch (err) {
      return this.#unresolved(ctx, flight, err);
    }
    if (!isPending(answer)) return this.#resolved(ctx, flight, answer);
    return after(answer, flight, this.#onResolved, this.#onUnresolved);
  }

  /** {@link #resolved} and {@link #unresolved} as continuations of a flight (made once: no closure per miss). */
  readonly #onResolved = (flight: Flight, outcome: Outcome): Outcome => this.#resolved(flight.ctx!, flight, outcome);
  readonly #onUnresolved = (flight: Flight, err: unknown): Outcome => this.#unresolved(flight.ctx!, flight, err);

  /** A leader's answer: stored, shared, and returned. */
  #resolved(ctx: QueryContext, flight: Flight, outcome: Outcome): Outcome {
    this.#land(flight);
    this.#maybeStore(ctx, outcome);
    flight.shared?.resolve({ outcome, snapshot: Buffer.from(outcome.body) });
    flight.shared = flight.ctx = undefined;
    return outcome;
  }

  /** A leader's error: shared with the waiters; a stale answer when there is one to serve, else thrown on. */
  #unresolved(ctx: QueryContext, flight: Flight, err: unknown): Outcome {
    this.#land(flight);
    flight.shared?.reject(err);
    flight.shared = flight.ctx = undefined;
    const stale = STALE_ON.has(errorCode(err)) ? this.#stale(ctx) : undefined;
    if (stale !== undefined) return stale;
    throw err;
  }

  /**
   * Waits for the leader of an identical query and answers with a copy of its
   * result. When the leader failed because its own client went away, the
   * query is resolved again (once) rather than failed with it.
   */
  async #wait(ctx: QueryContext, next: Next, flight: Flight, retried = false): Promise<Outcome> {
    flight.shared ??= Promise.withResolvers<Shared>();
    let shared: Shared;
    try {
      shared = await flight.shared.promise;
    } catch (err) {
      if (flight.signal.aborted && !ctx.signal.aborted && !retried) {
        const again = this.#flight(flight.name, flight.sub);
        return again === undefined ? this.#lead(ctx, next, flight.name, true) : this.#wait(ctx, next, again, true);
      }
      const stale = STALE_ON.has(errorCode(err)) ? this.#stale(ctx) : undefined;
      if (stale !== undefined) return stale;
      throw err;
    }
    this.#coalesced++;
    const { outcome, snapshot } = shared;
    const body = Buffer.from(snapshot);
    personalize(body, ctx);
    return { ...outcome, body };
  }

  /**
   * Stores an upstream's answer when it is cacheable: never a policy or local
   * outcome, and never the answer to a non-recursive query (RD=0: what the
   * upstream happened to hold, maybe a referral), which recursive queries must
   * not be given. A non-recursive query may still be answered from the cache.
   */
  #maybeStore(ctx: QueryContext, outcome: Outcome): void {
    if (outcome.kind !== 'reply' || outcome.source !== 'upstream' || (ctx.query.flags & Flags.RD) === 0) return;
    if (outcome.rcode !== RCode.NOERROR && outcome.rcode !== RCode.NXDOMAIN) return;
    let scan = outcome.scan;
    if (scan === undefined) {
      try {
        scan = scanReply(outcome.body);
      } catch {
        return; // An upstream body we cannot scan is simply not kept.
      }
    }
    // Cluster-zone negative answers are capped short, so a new Service appears quickly.
    const cap = ctx.route.kind === 'cluster' ? this.#config.clusterNegativeMaxTtl : undefined;
    this.store.set(keyName(ctx), subKey(ctx.query), outcome.body, scan, { negativeCap: cap, names: outcome.names });
  }

  /** A stale answer to the query (RFC 8767), or undefined when there is none to serve. */
  #stale(ctx: QueryContext): Outcome | undefined {
    if (!this.store.serveStale) return undefined;
    const info: HitInfo = { rcode: 0, questionEnd: 0, remainingTtl: 0, names: undefined };
    const body = this.store.getStale(keyName(ctx), subKey(ctx.query), info);
    if (body === undefined || info.questionEnd !== ctx.query.questionEnd) return undefined;
    personalize(body, ctx);
    return { kind: 'reply', body, rcode: info.rcode, source: 'cache', reason: 'stale', stale: true, ede: STALE_EDE, ...(info.names ? { names: info.names } : {}) };
  }
}
