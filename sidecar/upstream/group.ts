/**
 * Upstream groups: ordered failover with health tracking, TCP fallback on
 * truncation, an optional parallel race, all inside one total deadline that
 * stays under the 5 s a client's resolver waits.
 *
 * For each query the members that are up are tried in order (all members in
 * order when none is up). Each attempt gets `attemptTimeoutMs`, the last one
 * whatever is left of `deadlineMs`. A reply with TC set from a UDP member is
 * repeated over TCP to the same server (RFC 7766 §5). SERVFAIL and REFUSED
 * move on to the next member; when every member answered that way the last
 * such reply is returned. A reply whose layout is malformed (scanReply:
 * compression loops, counts that lie) is that member's failure, like a
 * transport error. `failuresBeforeDown` consecutive transport failures
 * mark a member down; it is then probed in the background every
 * `probeIntervalMs` (a root NS query) until it answers, and skipped meanwhile.
 */
import { monotonicMs } from '../runtime/clock.ts';
import { EDECode, RRType } from '../dns/constants.ts';
import { buildQuery } from '../dns/query.ts';
import { scanReply, type ReplyScan } from '../dns/records.ts';
import { ErrorCodes, SidecarError, errorCode } from '../errors.ts';
import { randomId, rcodeOf, truncated, upstreamError } from './message.ts';
import { promiseOf, type AbortListener, type ExchangeReceiver, type ExchangeSignal, type Receiver, type Upstream } from './upstream.ts';
import { addDeadline, type DeadlineList, type Timed } from './deadlines.ts';
import { LinkedList } from '../runtime/tables.ts';

/** Metric hooks of a group; every method optional. Exported as tenant_dns_upstream_*. */
export interface UpstreamObserver {
  /**
   * One attempt against one upstream finished: the reply's RCODE (null on
   * error), the SidecarError code (null on a reply), the seconds it took.
   * A TCP fallback after TC is its own attempt, under the TCP upstream's address.
   */
  onAttempt?(upstream: string, rcode: number | null, errorCode: string | null, seconds: number, error?: unknown): void;
  /** Connections of an upstream opened (+1) or closed (-1); wired by fromUrl's `onConnection`. */
  onConnection?(upstream: string, delta: number): void;
  /** A UDP upstream dropped a datagram that matched no query in flight; wired by fromUrl's `onDroppedReply`. */
  onDroppedReply?(upstream: string): void;
  /** A member was marked down (false) or came back (true). */
  onHealth?(upstream: string, healthy: boolean): void;
}

/** Options of {@link createGroup}. All times in milliseconds. */
export interface GroupOptions {
  /** Time one upstream gets before the next is tried. Default 1500. */
  readonly attemptTimeoutMs?: number;
  /** Time for the whole query, all attempts included; must be below 5000. Default 4000. */
  readonly deadlineMs?: number;
  /** Consecutive failures (errors or timeouts; not SERVFAIL, OVERLOADED or the caller's abort) that mark an upstream down. Default 3. */
  readonly failuresBeforeDown?: number;
  /** Interval between background probes of a down upstream. Default 2000. */
  readonly probeIntervalMs?: number;
  /** Members raced in parallel at the start of each query (the fastest good reply wins); 1 or absent: none. */
  readonly race?: number;
  /** Metric hooks. */
  readonly observer?: UpstreamObserver;
}

/** A reply, its scan, and the upstream that gave it. */
export interface GroupReply {
  readonly reply: Buffer;
  /** The reply's layout, read once here for the stages after the group. */
  readonly scan: ReplyScan;
  /** The address of the upstream that answered (a TCP address after a TC fallback). */
  readonly upstream: string;
}

/** Where a group's answer to one query goes ({@link UpstreamGroup.start}): exactly one call, once. */
export type GroupReceiver = Receiver<GroupReply>;

/** A named, ordered set of upstreams. */
export interface UpstreamGroup {
  readonly name: string;
  /**
   * Resolves `query` through the members (see the module comment). Rejects
   * with UPSTREAM_GROUP_FAILED (cause: the last error) when every attempt
   * failed or the deadline passed, UPSTREAM_ABORTED when `signal` aborted.
   */
  resolve(query: Buffer, signal: ExchangeSignal): Promise<GroupReply>;
  /**
   * {@link resolve} in callback form: the reply or the error goes to `to`
   * (possibly before `start` returns, when the query cannot be sent), and no
   * promise is made.
   */
  start(query: Buffer, signal: ExchangeSignal, to: GroupReceiver): void;
  /** Calls `cb` once no query is in flight through the group (at once when none is). */
  whenIdle(cb: () => void): void;
  /** Whether at least one member is up. */
  healthy(): boolean;
  /** The members in order with their health. */
  members(): { address: string; healthy: boolean }[];
  /** Stops probes and closes every member. Idempotent. */
  close(): Promise<void>;
  /** Why the group's upstreams cannot be used (upstream/groups.ts's stand-in); undefined for a real group. */
  readonly unusable?: string;
}

/** An upstream that can repeat an exchange over TCP (UDP upstreams). */
interface WithTcpFallback extends Upstream {
  tcpFallback(): Upstream;
}

function hasTcpFallback(u: Upstream): u is WithTcpFallback {
  return typeof (u as Partial<WithTcpFallback>).tcpFallback === 'function';
}

const SERVFAIL = 2;
const REFUSED = 5;

/** A query for the root's NS records, RD set, used as the health probe. */
function probeQuery(): Buffer {
  return buildQuery('', RRType.NS, randomId()).wire;
}

interface Member {
  readonly upstream: Upstream;
  failures: number;
  up: boolean;
  probe: NodeJS.Timeout | undefined;
}

/**
 * The deadlines following each parent AbortSignal. Most queries share one
 * long-lived parent (the sidecar's shutdown signal), and EventTarget walks
 * its listener list on every add and remove: one listener per parent that
 * aborts a list of followers keeps that O(1) however many queries are in
 * flight. A list linked through the deadlines themselves, not a Set: a
 * long-lived Set rehashes into new old-generation tables and leaves the old
 * ones, pointing at the young deadlines in flight then, until the next full
 * collection, which kept those deadlines and their queries alive until they
 * were promoted (runtime/tables.ts, IdTable).
 */
const followers = new WeakMap<ExchangeSignal, LinkedList<Deadline>>();

/** `child` aborts when `parent` does: a listener of a parent deadline, a follower of a parent AbortSignal. */
function follow(parent: ExchangeSignal, child: Deadline): void {
  if (parent instanceof Deadline) {
    parent.addEventListener('abort', child);
    return;
  }
  let list = followers.get(parent);
  if (list === undefined) {
    const created = new LinkedList<Deadline>();
    followers.set(parent, (list = created));
    parent.addEventListener('abort', {
      handleEvent() {
        // Each follower unfollows as it aborts (dispose): take the next one first.
        for (let c = created.head; c !== null; ) {
          const next = c.listNext;
          c.handleEvent();
          c = next;
        }
      },
    });
  }
  list.add(child);
}

function unfollow(parent: ExchangeSignal, child: Deadline): void {
  if (parent instanceof Deadline) {
    parent.removeEventListener('abort', child);
    return;
  }
  followers.get(parent)?.remove(child);
}

/** A deadline's timeout reason: a TimeoutError, so that transports report UPSTREAM_TIMEOUT. */
function timeoutReason(ms: number): DOMException {
  return new DOMException(`no answer within ${ms} ms`, 'TimeoutError');
}

/**
 * A group's deadline, the signal its exchanges run under: it aborts when
 * `parent` (the caller's signal, or the query's whole deadline) or `extra`
 * (a race's stop signal) aborts, with their reason, or `ms` milliseconds
 * after it was made with a TimeoutError reason (transports then report
 * UPSTREAM_TIMEOUT). One object per deadline on a shared deadline list
 * (deadlines.ts), instead of an AbortController with its AbortSignal, its
 * EventTarget bookkeeping and a listener record per exchange; everything it
 * holds is released by `dispose()` as soon as the exchange ends.
 */
class Deadline implements ExchangeSignal, Timed, AbortListener {
  aborted = false;
  reason: unknown = undefined;
  at = 0;
  prev: Timed | null = null;
  next: Timed | null = null;
  linked = false;
  /** Its neighbours among the followers of its parent AbortSignal (see {@link follow}). */
  listPrev: Deadline | null = null;
  listNext: Deadline | null = null;
  /** The listeners; most deadlines have one (an exchange, or an attempt's deadline). */
  #first: AbortListener | undefined = undefined;
  #more: AbortListener[] | undefined = undefined;
  readonly #parent: ExchangeSignal;
  readonly #extra: ExchangeSignal | undefined;
  readonly #ms: number;
  #list: DeadlineList | undefined = undefined;

  constructor(parent: ExchangeSignal, ms: number, extra?: ExchangeSignal) {
    this.#parent = parent;
    this.#extra = extra;
    this.#ms = ms;
    if (parent.aborted || extra?.aborted) {
      this.aborted = true;
      this.reason = parent.aborted ? parent.reason : extra!.reason;
      return;
    }
    follow(parent, this);
    // `this` is the listener (handleEvent): no closure per deadline.
    extra?.addEventListener('abort', this);
    this.#list = addDeadline(this, ms);
  }

  addEventListener(_type: 'abort', listener: AbortListener): void {
    if (this.aborted || listener === this.#first) return;
    if (this.#first === undefined) this.#first = listener;
    else if (this.#more === undefined) this.#more = [listener];
    else if (!this.#more.includes(listener)) this.#more.push(listener);
  }

  removeEventListener(_type: 'abort', listener: AbortListener): void {
    if (this.#first === listener) this.#first = undefined;
    else if (this.#more !== undefined) {
      const i = this.#more.indexOf(listener);
      if (i >= 0) this.#more.splice(i, 1);
    }
  }

  /** The parent or the extra signal aborted. */
  handleEvent(): void {
    this.#abort(this.#parent.aborted ? this.#parent.reason : this.#extra!.reason);
  }

  expire(): void {
    this.#abort(timeoutReason(this.#ms));
  }

  /** Stops following the parent signals and leaves the deadline list. Idempotent. */
  dispose(): void {
    if (this.#list === undefined) return;
    this.#list.remove(this);
    this.#list = undefined;
    unfollow(this.#parent, this);
    this.#extra?.removeEventListener('abort', this);
  }

  #abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.dispose();
    const first = this.#first;
    const more = this.#more;
    this.#first = this.#more = undefined;
    first?.handleEvent();
    if (more !== undefined) for (let i = 0; i < more.length; i++) more[i]!.handleEvent();
  }
}

/** Told when an {@link Attempt} ends. */
interface AttemptOwner {
  attemptDone(a: Attempt): void;
}

/**
 * One attempt against one member: its exchange, repeated once over TCP when
 * a UDP reply comes back truncated (RFC 7766 §5). A reply whose layout is
 * broken (a compression loop, counts that lie) is the member's failure, like
 * a transport error. Each exchange is reported to the observer, the end to
 * the owner, once; never throws.
 */
class Attempt implements ExchangeReceiver {
  readonly member: Member;
  /** This attempt's deadline (the owner disposes it). */
  readonly deadline: Deadline;
  /** Set when the attempt got a reply: the reply, its scan and the upstream that gave it. */
  result: GroupReply | undefined;
  /** Set when the attempt failed. */
  error: unknown;
  readonly #query: Buffer;
  readonly #owner: AttemptOwner;
  readonly #observer: UpstreamObserver | undefined;
  #target: Upstream;
  #start = 0;

  constructor(member: Member, query: Buffer, deadline: Deadline, owner: AttemptOwner, observer: UpstreamObserver | undefined) {
    this.member = member;
    this.deadline = deadline;
    this.#query = query;
    this.#owner = owner;
    this.#observer = observer;
    this.#target = member.upstream;
    this.#send();
  }

  #send(): void {
    this.#start = monotonicMs();
    try {
      // The attempt is the exchange's receiver: no promise between the group and the transport.
      this.#target.send(this.#query, this.deadline, this);
    } catch (err) {
      this.onError(err); // a transport that throws instead of calling back
    }
  }

  onReply(reply: Buffer): void {
    const target = this.#target;
    if (target === this.member.upstream && truncated(reply) && hasTcpFallback(target)) {
      this.#report(rcodeOf(reply), null);
      this.#target = target.tcpFallback();
      this.#send();
      return;
    }
    let scan: ReplyScan;
    try {
      scan = scanReply(reply);
    } catch (err) {
      this.onError(err);
      return;
    }
    this.#report(rcodeOf(reply), null);
    this.result = { reply, scan, upstream: target.address };
    this.#owner.attemptDone(this);
  }

  onError(error: unknown): void {
    this.#report(null, errorCode(error), error);
    this.error = error;
    this.#owner.attemptDone(this);
  }

  #report(rcode: number | null, code: string | null, error?: unknown): void {
    this.#observer?.onAttempt?.(this.#target.address, rcode, code, (monotonicMs() - this.#start) / 1000, error);
  }
}

/** Creates a group over `upstreams` (in failover order); the group owns and closes them. */
export function createGroup(name: string, upstreams: readonly Upstream[], options: GroupOptions = {}): UpstreamGroup {
  const attemptTimeoutMs = options.attemptTimeoutMs ?? 1500;
  const deadlineMs = options.deadlineMs ?? 4000;
  const failuresBeforeDown = options.failuresBeforeDown ?? 3;
  const probeIntervalMs = options.probeIntervalMs ?? 2000;
  const race = Math.max(1, Math.min(options.race ?? 1, upstreams.length));
  const observer = options.observer;
  if (upstreams.length === 0) throw new SidecarError(ErrorCodes.CONFIG_INVALID, `upstream group ${name} has no upstreams`);
  if (!(deadlineMs > 0 && deadlineMs < 5000)) {
    throw new SidecarError(ErrorCodes.CONFIG_INVALID, `upstream group ${name}: deadlineMs ${deadlineMs} must be above 0 and below 5000`);
  }
  if (!(attemptTimeoutMs > 0)) throw new SidecarError(ErrorCodes.CONFIG_INVALID, `upstream group ${name}: attemptTimeoutMs must be above 0`);
  const members: Member[] = upstreams.map((upstream) => ({ upstream, failures: 0, up: true, probe: undefined }));
  let closed = false;
  /** Queries in flight, and who waits for there to be none. */
  let inflight = 0;
  let idle: (() => void)[] | undefined;

  function markUp(m: Member): void {
    m.failures = 0;
    if (m.probe) {
      clearTimeout(m.probe);
      m.probe = undefined;
    }
    if (!m.up) {
      m.up = true;
      observer?.onHealth?.(m.upstream.address, true);
    }
  }

  function markFailure(m: Member): void {
    m.failures++;
    if (m.up && m.failures >= failuresBeforeDown) {
      m.up = false;
      observer?.onHealth?.(m.upstream.address, false);
      scheduleProbe(m);
    }
  }

  function scheduleProbe(m: Member): void {
    if (closed || m.probe || m.up) return;
    m.probe = setTimeout(() => {
      m.probe = undefined;
      if (closed || m.up) return;
      m.upstream.exchange(probeQuery(), AbortSignal.timeout(attemptTimeoutMs)).then(
        () => markUp(m),
        () => scheduleProbe(m),
      );
    }, probeIntervalMs);
    m.probe.unref();
  }

  /** The members to try, in order: those that are up, or all of them when none is. */
  function usable(): readonly Member[] {
    let up = 0;
    for (const m of members) if (m.up) up++;
    return up === members.length || up === 0 ? members : members.filter((m) => m.up);
  }

  /**
   * One query's way through the members: a race of the first `race`
   * members (when set), then the rest in order, inside the query's total
   * deadline. Its attempts report back to {@link Resolution.attemptDone}, and
   * it reports to its receiver; one object per query, no promise.
   */
  class Resolution implements AttemptOwner {
    readonly #to: GroupReceiver;
    readonly #query: Buffer;
    /** The caller's signal. */
    readonly #signal: ExchangeSignal;
    /** The caller's signal with the group's deadline. */
    readonly #total: Deadline;
    readonly #started = monotonicMs();
    readonly #order: readonly Member[];
    /** The next member of `#order` to try. */
    #next = 0;
    /** Racers still running; 0 once the race (if any) is over. */
    #racing = 0;
    /** Aborts the racers left when the race is decided. */
    #stop: AbortController | undefined;
    #settled = false;
    #lastError: unknown;
    #lastSoft: GroupReply | undefined;

    constructor(query: Buffer, signal: ExchangeSignal, to: GroupReceiver) {
      inflight++;
      this.#to = to;
      this.#query = query;
      this.#signal = signal;
      this.#total = new Deadline(signal, deadlineMs);
      this.#order = usable();
      if (race > 1 && this.#order.length > 1) this.#startRace();
      else this.#tryNext();
    }

    #startRace(): void {
      const racers = Math.min(race, this.#order.length);
      const stop = new AbortController();
      this.#stop = stop;
      this.#racing = racers;
      this.#next = racers;
      const last = racers >= this.#order.length;
      for (let i = 0; i < racers; i++) {
        new Attempt(this.#order[i]!, this.#query, this.#attemptDeadline(last, stop.signal), this, observer);
      }
    }

    /** The next member in order, or the end of the query when none is left or the deadline passed. */
    #tryNext(): void {
      if (this.#next >= this.#order.length || this.#total.aborted) {
        this.#fail();
        return;
      }
      const m = this.#order[this.#next++]!;
      new Attempt(m, this.#query, this.#attemptDeadline(this.#next === this.#order.length), this, observer);
    }

    /**
     * An attempt's deadline: the query's own for the last attempt outside a
     * race (it gets what is left), else a timer of `attemptTimeoutMs` (at most
     * what is left) that also follows `extra`.
     */
    #attemptDeadline(last: boolean, extra?: ExchangeSignal): Deadline {
      if (last && !extra) return this.#total;
      const remaining = deadlineMs - (monotonicMs() - this.#started);
      const ms = Math.max(1, Math.ceil(last ? remaining : Math.min(attemptTimeoutMs, remaining)));
      return new Deadline(this.#total, ms, extra);
    }

    attemptDone(a: Attempt): void {
      if (a.deadline !== this.#total) a.deadline.dispose();
      const reply = this.#judge(a);
      if (this.#settled) return;
      let stop: AbortController | undefined;
      if (this.#racing > 0) {
        this.#racing--;
        if (reply === undefined && this.#racing > 0) return;
        this.#racing = 0;
        stop = this.#stop;
      }
      if (reply !== undefined) this.#finish(reply, undefined);
      // The race's losers are stopped only once the race is decided: their exchanges end at once
      // (transports call back synchronously) and must find the query settled or the race over.
      stop?.abort();
      if (reply === undefined) this.#tryNext();
    }

    /** Health bookkeeping for a finished attempt; its reply when it ends the query. */
    #judge(a: Attempt): GroupReply | undefined {
      const m = a.member;
      const reply = a.result;
      if (reply !== undefined) {
        markUp(m);
        const rcode = rcodeOf(reply.reply);
        if (rcode === SERVFAIL || rcode === REFUSED) {
          this.#lastSoft = reply;
          return undefined;
        }
        return reply;
      }
      // Aborts caused by the caller or by a race's winner, and the sidecar's own
      // in-flight caps (OVERLOADED), say nothing about the upstream's health.
      const code = errorCode(a.error);
      if (!this.#signal.aborted && code !== ErrorCodes.UPSTREAM_ABORTED && code !== ErrorCodes.OVERLOADED) markFailure(m);
      this.#lastError = a.error;
      return undefined;
    }

    /** Ends the query when no attempt answered. */
    #fail(): void {
      if (this.#signal.aborted) {
        this.#finish(undefined, upstreamError(ErrorCodes.UPSTREAM_ABORTED, 'resolving through group', name, this.#lastError));
      } else if (this.#lastSoft !== undefined) {
        this.#finish(this.#lastSoft, undefined);
      } else {
        const why = this.#total.aborted ? `deadline of ${deadlineMs} ms passed` : 'every upstream failed';
        this.#finish(
          undefined,
          new SidecarError(ErrorCodes.UPSTREAM_GROUP_FAILED, `resolving through group ${name}: ${why}`, {
            cause: this.#lastError,
            ede: { code: EDECode.NETWORK_ERROR, text: `no upstream of group ${name} answered` },
          }),
        );
      }
    }

    #finish(reply: GroupReply | undefined, err: unknown): void {
      this.#settled = true;
      this.#total.dispose();
      inflight--;
      if (reply !== undefined) this.#to.onReply(reply);
      else this.#to.onError(err);
      // After the receiver: a query it sends on through this group keeps the group busy.
      if (inflight === 0 && idle !== undefined) {
        const waiting = idle;
        idle = undefined;
        for (const cb of waiting) cb();
      }
    }
  }

  function start(query: Buffer, signal: ExchangeSignal, to: GroupReceiver): void {
    if (closed) to.onError(upstreamError(ErrorCodes.CLOSED, 'resolving through closed group', name));
    else new Resolution(query, signal, to);
  }

  return {
    name,
    resolve: (query, signal) => promiseOf<GroupReply>((to) => start(query, signal, to)),
    start,
    whenIdle(cb) {
      if (inflight === 0) cb();
      else (idle ??= []).push(cb);
    },
    healthy: () => members.some((m) => m.up),
    members: () => members.map((m) => ({ address: m.upstream.address, healthy: m.up })),
    async close() {
      if (closed) return;
      closed = true;
      for (const m of members) {
        if (m.probe) clearTimeout(m.probe);
        m.probe = undefined;
      }
      await Promise.all(members.map((m) => m.upstream.close()));
    },
  };
}
