/**
 * The pipeline contracts: a query's context, a stage's outcome, and the
 * stage itself (DESIGN §3). Stages are onion layers: a stage answers itself
 * or calls `next(ctx)` and may look at what comes back.
 */
import type { ReplyScan } from '../dns/records.ts';
import type { ExtendedError } from '../dns/reply.ts';
import type { ParsedQuery } from '../dns/wire.ts';
import type { Route } from '../route/classify.ts';
import { Deferred } from './deferred.ts';

/** The transport a query arrived on. */
export type Proto = 'udp' | 'tcp';

/**
 * Where an answer came from; metrics, logs and dashboards key on it.
 * `listener`: the listener answered (or dropped) the message itself: malformed,
 * over the in-flight cap, or a forwarding loop.
 */
export type Source = 'policy' | 'cache' | 'upstream' | 'local' | 'listener';

/** What the policy decided for a query. */
export interface Decision {
  /** allow, deny or log (log = allow and write a query log line). */
  readonly action: 'allow' | 'deny' | 'log';
  /** The deciding rule's name, `default` for the default action, `platform:<name>` for platform rules. */
  readonly rule: string;
  /** Whether this query must be written to the query log whatever the log level. */
  readonly log: boolean;
}

/** Everything a stage knows about one client query. Never mutated by stages. */
export interface QueryContext {
  /** The client's message as received; stages must not modify it. */
  readonly wire: Buffer;
  /** Header, question and EDNS facts read from `wire`. */
  readonly query: ParsedQuery;
  /** udp or tcp. */
  readonly proto: Proto;
  /** Aborted when the client is gone or the sidecar shuts down. */
  readonly signal: AbortSignal;
  /** `monotonicMs()` when the query arrived, in milliseconds. */
  readonly startedAt: number;
  /**
   * The question's classification (route/classify.ts), made once when the
   * context is created: every stage routes on it. For internal queries, the
   * group they are sent through (`internalRoute` of route/classify.ts).
   */
  readonly route: Route;
  /**
   * The policy decision the metrics and the query log count: the route's, for
   * client queries; undefined for internal queries.
   */
  decision?: Decision;
  /** True for queries the sidecar makes itself (e.g. chasing a split-zone CNAME). */
  readonly internal: boolean;
}

/** The answer a stage produced, with its provenance. */
export interface Outcome {
  /** reply: send `body`; drop: send nothing. */
  readonly kind: 'reply' | 'drop';
  /**
   * The reply body: a complete DNS message with the client's ID and no OPT
   * record (the listener adds it). Owned by the receiver: whoever gets an
   * Outcome may modify or keep its body. Empty for `drop`.
   */
  readonly body: Buffer;
  /** The full rcode of the reply (may exceed 15 for extended codes). */
  readonly rcode: number;
  /** Who answered. */
  readonly source: Source;
  /** Short reason: rule name, zone, upstream address, error code. */
  readonly reason: string;
  /** Extended DNS Error to attach when the client speaks EDNS. */
  readonly ede?: ExtendedError;
  /** The upstream that answered, when one did. */
  readonly upstream?: string;
  /** True when the answer is stale (served from an expired cache entry, RFC 8767). */
  readonly stale?: boolean;
  /**
   * The names the answer leads to besides the question: owner names and
   * CNAME/DNAME targets of its answer section (dns/chain.ts), a split zone's
   * CNAME target. The policy stage checks each (DESIGN §1: the policy checks
   * every name in an answer). Undefined when there are none.
   */
  readonly names?: readonly string[];
  /**
   * The layout of `body` when the stage that made it has read it (upstream
   * replies: the group scans each one), so the cache need not scan it again.
   * Valid only while the body's layout is unchanged (ID, flags and question
   * spelling may be rewritten).
   */
  readonly scan?: ReplyScan;
}

/**
 * An outcome now, or one to come. A stage that can answer at once (a cache
 * hit, a policy denial, a static split answer) returns the outcome itself,
 * so such a query goes through the whole pipeline without a promise or a
 * microtask (DESIGN §4); only work that waits (an upstream exchange) returns
 * a pending answer: a {@link Deferred} on the query path (the forward stage's,
 * and every `then()` of it), whose continuations run as soon as it settles;
 * a Promise where a stage's rare path is an async function (a search walk, a
 * split zone's CNAME chase, a query waiting for an identical one). Callers
 * test with {@link isPending} and continue with `then()`, which both have;
 * `await` takes either.
 */
export type Answer = Outcome | PromiseLike<Outcome>;

/** Whether an answer (an {@link Answer}, or a listener's reply) is still to come. */
export function isPending<T>(answer: T | PromiseLike<T>): answer is PromiseLike<T> {
  return answer instanceof Deferred || answer instanceof Promise;
}

/** Calls the rest of the pipeline. */
export type Next = (ctx: QueryContext) => Answer;

/** One pipeline stage. */
export interface Stage {
  /** Stable name, as in the order list. */
  readonly name: string;
  /**
   * Answers the query or delegates to `next`: synchronously when it can,
   * else with a promise. May throw or reject; the composer turns that into SERVFAIL.
   */
  handle(ctx: QueryContext, next: Next): Answer;
}

/** An outcome that sends nothing. */
export function dropOutcome(source: Source, reason: string): Outcome {
  return { kind: 'drop', body: Buffer.alloc(0), rcode: -1, source, reason };
}
