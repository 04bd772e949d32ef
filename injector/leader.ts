/**
 * Leader election with a `coordination.k8s.io/v1` Lease, as client-go's
 * leaderelection package does it: every replica reads the Lease; a replica
 * takes it when it is free (no holder) or its holder has not renewed it for
 * `leaseDurationSeconds` (measured on this replica's own clock, from when it
 * last saw the Lease change, so clocks need not agree), by replacing it with
 * the resourceVersion it read: of two replicas that try at once, the API
 * server lets one win and answers the other 409 Conflict. The leader renews
 * every `renewIntervalMs`; the others retry every `retryIntervalMs`.
 *
 * A leader stops leading (and its controller stops writing) at once when a
 * renewal finds another holder or conflicts, and also when it has not renewed
 * for `renewDeadlineMs` (shorter than the lease, so it has stopped before any
 * other replica may take over). On {@link LeaderElector.stop} it releases the
 * Lease (holder emptied), so another replica takes over at its next retry
 * instead of after the lease duration.
 */
import type { CoordinationV1Api, V1Lease } from '@kubernetes/client-node';
import { V1MicroTime } from '@kubernetes/client-node';
import { apiStatus, firstLine } from './kube.ts';

/** The Lease calls the elector makes (a CoordinationV1Api does them). */
export type LeaseApi = Pick<CoordinationV1Api, 'readNamespacedLease' | 'createNamespacedLease' | 'replaceNamespacedLease'>;

/** Time as the elector sees it: injectable so tests run a lease's 15 s without waiting 15 s. */
export interface ElectionClock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `fn` after `ms` milliseconds; returns a cancel function. */
  after(ms: number, fn: () => void): () => void;
}

/** The real clock. */
export const SYSTEM_CLOCK: ElectionClock = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  },
};

/** Options of {@link LeaderElector}. */
export interface LeaderElectionOptions {
  readonly api: LeaseApi;
  /** The Lease's namespace (the injector's own) and name. */
  readonly namespace: string;
  readonly name: string;
  /** This replica's identity in `spec.holderIdentity`: pod name plus a random part (a restarted pod is a new holder). */
  readonly identity: string;
  /** Seconds a holder's lease lasts without renewal. Default 15. */
  readonly leaseDurationSeconds?: number;
  /** Milliseconds between renewals by the leader. Default 5 000. */
  readonly renewIntervalMs?: number;
  /** Milliseconds a leader keeps leading without a successful renewal. Default 10 000 (under the lease duration). */
  readonly renewDeadlineMs?: number;
  /** Milliseconds between attempts by a replica that does not lead. Default 2 000. */
  readonly retryIntervalMs?: number;
  readonly clock?: ElectionClock;
  /** Called when this replica becomes the leader. */
  readonly onStartedLeading?: () => void;
  /** Called when it stops being the leader (lost, deadline passed, or stopped). */
  readonly onStoppedLeading?: () => void;
  /** Problems worth logging (a failed renewal, an unexpected API error). */
  readonly log?: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
}

/** What this replica last saw of the Lease, and when (its own clock). */
interface Observed {
  readonly holder: string;
  readonly renewTime: string;
  readonly at: number;
}

/** One replica's side of the election. */
export class LeaderElector {
  readonly #o: Required<Omit<LeaderElectionOptions, 'onStartedLeading' | 'onStoppedLeading' | 'log'>> & LeaderElectionOptions;
  #observed: Observed | undefined;
  /** When the last renewal (or acquisition) succeeded; undefined while not leading. */
  #renewedAt: number | undefined;
  #cancelTimer: (() => void) | undefined;
  #cancelDeadline: (() => void) | undefined;
  #stopped = true;
  #attempt: Promise<void> = Promise.resolve();

  constructor(opts: LeaderElectionOptions) {
    this.#o = { leaseDurationSeconds: 15, renewIntervalMs: 5_000, renewDeadlineMs: 10_000, retryIntervalMs: 2_000, clock: SYSTEM_CLOCK, ...opts };
  }

  /** This replica's holder identity. */
  get identity(): string {
    return this.#o.identity;
  }

  /** Whether this replica leads now: it holds the Lease and renewed it within the renew deadline. */
  get isLeader(): boolean {
    return this.#renewedAt !== undefined && this.#o.clock.now() - this.#renewedAt < this.#o.renewDeadlineMs;
  }

  /** Starts campaigning (the first attempt runs at once). */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule(0);
  }

  /**
   * Stops campaigning; a leader releases the Lease (holder emptied, so
   * another replica takes it at its next retry) and stops leading. Resolves
   * when the release is written or failed.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#cancelTimer?.();
    await this.#attempt;
    const was = this.#renewedAt !== undefined;
    this.#lose();
    if (was) await this.#release();
  }

  #schedule(ms: number): void {
    this.#cancelTimer?.();
    this.#cancelTimer = this.#o.clock.after(ms, () => {
      this.#attempt = this.#tryAcquireOrRenew().then((leading) => {
        if (!this.#stopped) this.#schedule(leading ? this.#o.renewIntervalMs : this.#o.retryIntervalMs);
      });
    });
  }

  #lease(base: V1Lease | undefined, now: number): V1Lease {
    const spec = base?.spec ?? {};
    const taking = spec.holderIdentity !== this.#o.identity;
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: base?.metadata ?? { name: this.#o.name, namespace: this.#o.namespace },
      spec: {
        ...spec,
        holderIdentity: this.#o.identity,
        leaseDurationSeconds: this.#o.leaseDurationSeconds,
        renewTime: new V1MicroTime(now),
        acquireTime: taking ? new V1MicroTime(now) : spec.acquireTime,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (taking && base ? 1 : 0),
      },
    };
  }

  /** One attempt; resolves with whether this replica leads afterwards. Never rejects. */
  async #tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, clock } = this.#o;
    const now = clock.now();
    try {
      let current: V1Lease | undefined;
      try {
        current = await api.readNamespacedLease({ name, namespace });
      } catch (err) {
        if (apiStatus(err) !== 404) throw err;
      }
      if (!current) {
        await api.createNamespacedLease({ namespace, body: this.#lease(undefined, now) });
        this.#observe(this.#o.identity, 'created', now);
        return this.#won(now);
      }
      const holder = current.spec?.holderIdentity ?? '';
      // client-node hands MicroTime back as the wire string; compare it as text.
      const renewed: unknown = current.spec?.renewTime;
      const renewTime = renewed instanceof Date ? renewed.toISOString() : String(renewed ?? '');
      this.#observe(holder, renewTime, now);
      const duration = (current.spec?.leaseDurationSeconds ?? this.#o.leaseDurationSeconds) * 1000;
      if (holder !== '' && holder !== this.#o.identity && now - this.#observed!.at < duration) {
        this.#lose();
        return false;
      }
      if (this.#stopped) return false;
      await api.replaceNamespacedLease({ name, namespace, body: this.#lease(current, now) });
      return this.#won(now);
    } catch (err) {
      const status = apiStatus(err);
      if (status === 409) {
        // Someone else created or replaced it first: they lead.
        this.#lose();
        return false;
      }
      this.#o.log?.('warn', 'leader election: lease request failed', { lease: `${namespace}/${name}`, status, error: firstLine(err) });
      // A leader keeps leading until its renew deadline (the timer set at the last renewal ends it).
      return this.isLeader;
    }
  }

  #observe(holder: string, renewTime: string, now: number): void {
    const o = this.#observed;
    if (!o || o.holder !== holder || o.renewTime !== renewTime) this.#observed = { holder, renewTime, at: now };
  }

  #won(now: number): boolean {
    if (this.#stopped) return false;
    const was = this.#renewedAt !== undefined;
    this.#renewedAt = now;
    this.#cancelDeadline?.();
    this.#cancelDeadline = this.#o.clock.after(this.#o.renewDeadlineMs, () => {
      if (this.#renewedAt !== undefined && !this.isLeader) {
        this.#o.log?.('warn', 'leader election: renew deadline passed; no longer leading', { lease: `${this.#o.namespace}/${this.#o.name}` });
        this.#lose();
      }
    });
    if (!was) {
      this.#o.log?.('info', 'leader election: leading', { lease: `${this.#o.namespace}/${this.#o.name}`, identity: this.#o.identity });
      this.#o.onStartedLeading?.();
    }
    return true;
  }

  #lose(): void {
    this.#cancelDeadline?.();
    this.#cancelDeadline = undefined;
    if (this.#renewedAt === undefined) return;
    this.#renewedAt = undefined;
    this.#o.log?.('info', 'leader election: not leading', { lease: `${this.#o.namespace}/${this.#o.name}`, identity: this.#o.identity });
    this.#o.onStoppedLeading?.();
  }

  async #release(): Promise<void> {
    const { api, namespace, name, clock } = this.#o;
    try {
      const current = await api.readNamespacedLease({ name, namespace });
      if (current.spec?.holderIdentity !== this.#o.identity) return;
      const now = new V1MicroTime(clock.now());
      await api.replaceNamespacedLease({ name, namespace, body: { ...current, spec: { ...current.spec, holderIdentity: '', renewTime: now, leaseDurationSeconds: 1 } } });
    } catch (err) {
      this.#o.log?.('warn', 'leader election: releasing the lease failed; another replica takes over when it expires', { error: firstLine(err) });
    }
  }
}
