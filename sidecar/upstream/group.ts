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
import { RRType } from '../dns/constants.ts';
import { buildQuery } from '../dns/query.ts';
import { scanReply, type ReplyScan } from '../dns/records.ts';
import { ErrorCodes, SidecarError, errorCode } from '../errors.ts';
import { randomId, rcodeOf, truncated, upstreamError } from './message.ts';
import type { Upstream } from './upstream.ts';

/** Metric hooks of a group; every method optional. Exported as tenant_dns_upstream_*. */
export interface UpstreamObserver {
  /**
   * One attempt against one upstream finished: the reply's RCODE (null on
   * error), the SidecarError code (null on a reply), the seconds it took.
   * A TCP fallback after TC is its own attempt, under the TCP upstream's address.
   */
  onAttempt?(upstream: string, rcode: number | null, errorCode: string | null, seconds: number): void;
  /** Connections of an upstream opened (+1) or closed (-1); wired by fromUrl's `onConnection`. */
  onConnection?(upstream: string, delta: number): void;
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

/** A named, ordered set of upstreams. */
export interface UpstreamGroup {
  readonly name: string;
  /**
   * Resolves `query` through the members (see the module comment). Rejects
   * with UPSTREAM_GROUP_FAILED (cause: the last error) when every attempt
   * failed or the deadline passed, UPSTREAM_ABORTED when `signal` aborted.
   */
  resolve(query: Buffer, signal: AbortSignal): Promise<GroupReply>;
  /** Whether at least one member is up. */
  healthy(): boolean;
  /** The members in order with their health. */
  members(): { address: string; healthy: boolean }[];
  /** Stops probes and closes every member. Idempotent. */
  close(): Promise<void>;
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

type Attempt = { ok: true; reply: Buffer; scan: ReplyScan; upstream: string } | { ok: false; error: unknown };

/** A signal with a timer, and the function that releases both. */
interface Deadline {
  readonly signal: AbortSignal;
  /** Clears the timer and the listeners on the parent signals. Idempotent. */
  dispose(): void;
}

const noop = (): void => {};

/**
 * The deadlines following each parent signal. Most queries share one
 * long-lived parent (the sidecar's shutdown signal), and EventTarget walks
 * its listener list on every add and remove: one listener per parent that
 * aborts a set keeps that O(1) however many queries are in flight.
 */
const followers = new WeakMap<AbortSignal, Set<AbortController>>();

function follow(parent: AbortSignal, child: AbortController): void {
  let set = followers.get(parent);
  if (set === undefined) {
    const created = new Set<AbortController>();
    followers.set(parent, created);
    parent.addEventListener('abort', () => {
      for (const c of created) c.abort(parent.reason);
      created.clear();
    }, { once: true });
    set = created;
  }
  set.add(child);
}

/**
 * A signal that aborts when `parent` (or `extra`) aborts, or after `ms`
 * milliseconds with a TimeoutError reason (transports then report
 * UPSTREAM_TIMEOUT). Unlike AbortSignal.any/timeout, everything it holds is
 * released by `dispose()` as soon as the exchange ends.
 */
function deadlineSignal(parent: AbortSignal, ms: number, extra?: AbortSignal): Deadline {
  const controller = new AbortController();
  const signal = controller.signal;
  if (parent.aborted || extra?.aborted) {
    controller.abort(parent.aborted ? parent.reason : extra!.reason);
    return { signal, dispose: noop };
  }
  const onExtra = () => controller.abort(extra!.reason);
  follow(parent, controller);
  extra?.addEventListener('abort', onExtra, { once: true });
  const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${ms} ms`, 'TimeoutError')), ms);
  return {
    signal,
    dispose() {
      clearTimeout(timer);
      followers.get(parent)?.delete(controller);
      extra?.removeEventListener('abort', onExtra);
    },
  };
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

  /** One attempt, TC fallback included; never rejects. */
  async function attempt(m: Member, query: Buffer, signal: AbortSignal): Promise<Attempt> {
    let target: Upstream = m.upstream;
    let start = performance.now();
    try {
      let reply = await target.exchange(query, signal);
      if (truncated(reply) && hasTcpFallback(m.upstream)) {
        observer?.onAttempt?.(target.address, rcodeOf(reply), null, (performance.now() - start) / 1000);
        target = m.upstream.tcpFallback();
        start = performance.now();
        reply = await target.exchange(query, signal);
      }
      // A reply whose layout is broken (a compression loop, counts that lie) is this member's failure: move on.
      const scan = scanReply(reply);
      observer?.onAttempt?.(target.address, rcodeOf(reply), null, (performance.now() - start) / 1000);
      return { ok: true, reply, scan, upstream: target.address };
    } catch (error) {
      observer?.onAttempt?.(target.address, null, errorCode(error), (performance.now() - start) / 1000);
      return { ok: false, error };
    }
  }

  async function resolve(query: Buffer, signal: AbortSignal): Promise<GroupReply> {
    if (closed) throw upstreamError(ErrorCodes.CLOSED, 'resolving through closed group', name);
    const started = performance.now();
    // One controller and one timer per query, both released when the query ends: signals made
    // with AbortSignal.timeout/any keep their timers (and what they reference) alive for the
    // whole deadline after the answer, which under load is most of the heap.
    const total = deadlineSignal(signal, deadlineMs);
    const up = members.filter((m) => m.up);
    const order = up.length > 0 ? up : members;
    let lastError: unknown;
    let lastSoft: GroupReply | undefined;

    const outcome = (m: Member, a: Attempt): GroupReply | undefined => {
      if (a.ok) {
        markUp(m);
        const rcode = rcodeOf(a.reply);
        if (rcode === SERVFAIL || rcode === REFUSED) {
          lastSoft = { reply: a.reply, scan: a.scan, upstream: a.upstream };
          return undefined;
        }
        return { reply: a.reply, scan: a.scan, upstream: a.upstream };
      }
      // Aborts caused by the caller or by a race's winner, and the sidecar's own
      // in-flight caps (OVERLOADED), say nothing about the upstream's health.
      const code = errorCode(a.error);
      if (!signal.aborted && code !== ErrorCodes.UPSTREAM_ABORTED && code !== ErrorCodes.OVERLOADED) markFailure(m);
      lastError = a.error;
      return undefined;
    };

    /** An attempt's signal: the query's own for the last attempt (it gets what is left), else a shorter timer. */
    const attemptSignal = (last: boolean, extra?: AbortSignal): Deadline => {
      if (last && !extra) return { signal: total.signal, dispose: noop };
      const remaining = deadlineMs - (performance.now() - started);
      const ms = Math.max(1, Math.ceil(last ? remaining : Math.min(attemptTimeoutMs, remaining)));
      return deadlineSignal(total.signal, ms, extra);
    };

    try {
      let next = 0;
      if (race > 1 && order.length > 1) {
        const racers = order.slice(0, race);
        next = racers.length;
        const stop = new AbortController();
        const won = await new Promise<GroupReply | undefined>((done) => {
          let pending = racers.length;
          for (const m of racers) {
            const d = attemptSignal(next >= order.length, stop.signal);
            attempt(m, query, d.signal).then((a) => {
              d.dispose();
              const r = outcome(m, a);
              pending--;
              if (r) done(r);
              else if (pending === 0) done(undefined);
            });
          }
        });
        stop.abort();
        if (won) return won;
      }
      for (let i = next; i < order.length; i++) {
        if (total.signal.aborted) break;
        const m = order[i]!;
        const d = attemptSignal(i === order.length - 1);
        let a: Attempt;
        try {
          a = await attempt(m, query, d.signal);
        } finally {
          d.dispose();
        }
        const r = outcome(m, a);
        if (r) return r;
      }
      if (signal.aborted) throw upstreamError(ErrorCodes.UPSTREAM_ABORTED, 'resolving through group', name, lastError);
      if (lastSoft) return lastSoft;
      const why = total.signal.aborted ? `deadline of ${deadlineMs} ms passed` : 'every upstream failed';
      throw new SidecarError(ErrorCodes.UPSTREAM_GROUP_FAILED, `resolving through group ${name}: ${why}`, { cause: lastError });
    } finally {
      total.dispose();
    }
  }

  return {
    name,
    resolve,
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
