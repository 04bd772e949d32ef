/**
 * The bound on admissions in progress: a request takes a slot before its body
 * is read, so what bodies and their parsed JSON hold in memory is bounded, and
 * one client's large reviews cannot keep the API server's small ones waiting.
 *
 * - Two lanes by declared body size (Content-Length): reviews up to
 *   `smallBodyBytes` (a pod's AdmissionReview is a few KiB to a few tens)
 *   share `small` slots; larger ones, and bodies of undeclared length, take
 *   one of `large` slots. Parsing and patching a large review blocks the
 *   event loop for tens of milliseconds, so at most `large` of them are in
 *   progress at once, and after each the large lane rests as long as that
 *   admission took (at most `largeRestMaxMs`): large reviews get at most about
 *   half of the event loop, and small reviews are answered in between.
 * - A request that finds its lane full waits. The waiting requests of a lane
 *   are served round-robin by source address, so one address's backlog does
 *   not delay another's requests.
 * - At most `maxWaiting` requests wait in all and `maxWaitingPerSource` per
 *   address; past either, `enter` says no at once (the server answers 429
 *   with Retry-After).
 * - A request whose client goes away while it waits leaves the queue.
 */

/** Limits of an {@link AdmissionGate}. */
export interface AdmissionGateLimits {
  /** Bodies of at most this many bytes (declared) take the small lane. */
  readonly smallBodyBytes: number;
  /** Admissions in progress at once in the small lane. */
  readonly small: number;
  /** In the large lane. */
  readonly large: number;
  /** Most milliseconds the large lane rests after an admission (it rests as long as the admission took). */
  readonly largeRestMaxMs: number;
  /** Requests waiting at once, both lanes together. */
  readonly maxWaiting: number;
  /** Requests waiting at once from one source address. */
  readonly maxWaitingPerSource: number;
}

/**
 * Default limits: 16 small admissions (64 KiB bodies at most) and one large
 * at once, resting up to a second after each; 256 waiting, 64 of them from
 * one address (more than an API server sends in a burst: its calls wait
 * rather than fail).
 */
export const DEFAULT_ADMISSION_GATE: AdmissionGateLimits = { smallBodyBytes: 64 * 1024, small: 16, large: 1, largeRestMaxMs: 1_000, maxWaiting: 256, maxWaitingPerSource: 64 };

/** Ends an admission: frees its slot for the next waiting request. Idempotent. */
export type Release = () => void;

interface Waiter {
  readonly source: string;
  readonly grant: (release: Release) => void;
}

/** One lane: its slots and its waiting requests, per source address in round-robin order. */
class Lane {
  readonly slots: number;
  /** Most milliseconds the lane rests after an admission; 0: it never rests. */
  readonly restMaxMs: number;
  active = 0;
  /** Until when (performance.now()) the lane rests: no admission starts before. */
  restUntil = 0;
  /** The timer that ends the rest, while one runs. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Per source, its waiting requests in arrival order; the Map's order is the round-robin order. */
  readonly queues = new Map<string, Waiter[]>();

  constructor(slots: number, restMaxMs: number) {
    this.slots = slots;
    this.restMaxMs = restMaxMs;
  }

  /** Whether an admission may start now. */
  open(): boolean {
    return this.active < this.slots && performance.now() >= this.restUntil;
  }

  /** The next waiter, round-robin by source: that source moves to the back. */
  take(): Waiter | undefined {
    for (const [source, queue] of this.queues) {
      const w = queue.shift()!;
      this.queues.delete(source);
      if (queue.length > 0) this.queues.set(source, queue);
      return w;
    }
    return undefined;
  }

  remove(w: Waiter): boolean {
    const queue = this.queues.get(w.source);
    const at = queue?.indexOf(w) ?? -1;
    if (at < 0) return false;
    queue!.splice(at, 1);
    if (queue!.length === 0) this.queues.delete(w.source);
    return true;
  }
}

/** Thrown (as the rejection of {@link AdmissionGate.enter}) when the client went away while its request waited. */
export class AdmissionAborted extends Error {
  constructor() {
    super('the client went away while its admission waited');
    this.name = 'AdmissionAborted';
  }
}

/** The bound on admissions in progress (see the module comment). */
export class AdmissionGate {
  readonly limits: AdmissionGateLimits;
  readonly #small: Lane;
  readonly #large: Lane;
  #waiting = 0;
  readonly #waitingBySource = new Map<string, number>();
  readonly #onWaiting: ((waiting: number) => void) | undefined;

  /** `onWaiting` hears the number of waiting requests whenever it changes. */
  constructor(limits: AdmissionGateLimits = DEFAULT_ADMISSION_GATE, onWaiting?: (waiting: number) => void) {
    this.limits = limits;
    this.#onWaiting = onWaiting;
    this.#small = new Lane(limits.small, 0);
    this.#large = new Lane(limits.large, limits.largeRestMaxMs);
  }

  /** Requests waiting now. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Admissions in progress now. */
  get active(): number {
    return this.#small.active + this.#large.active;
  }

  /**
   * Takes a slot for a request from `source` with a body of `bytes` (NaN:
   * undeclared). Resolves with its release once it holds a slot; rejects with
   * {@link AdmissionAborted} when `signal` aborts first; undefined when too
   * many wait already.
   */
  enter(source: string, bytes: number, signal: AbortSignal): Promise<Release> | undefined {
    const lane = bytes <= this.limits.smallBodyBytes ? this.#small : this.#large;
    if (lane.open() && lane.queues.size === 0) return Promise.resolve(this.#hold(lane));
    const mine = this.#waitingBySource.get(source) ?? 0;
    if (this.#waiting >= this.limits.maxWaiting || mine >= this.limits.maxWaitingPerSource) return undefined;
    if (signal.aborted) return Promise.reject(new AdmissionAborted());
    this.#waiting++;
    this.#waitingBySource.set(source, mine + 1);
    this.#onWaiting?.(this.#waiting);
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = {
        source,
        grant: (release) => {
          signal.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      const onAbort = () => {
        if (!lane.remove(waiter)) return;
        this.#left(source);
        reject(new AdmissionAborted());
      };
      signal.addEventListener('abort', onAbort, { once: true });
      let queue = lane.queues.get(source);
      if (!queue) lane.queues.set(source, (queue = []));
      queue.push(waiter);
      this.#dispatch(lane);
    });
  }

  #left(source: string): void {
    this.#waiting--;
    const n = this.#waitingBySource.get(source)! - 1;
    if (n === 0) this.#waitingBySource.delete(source);
    else this.#waitingBySource.set(source, n);
    this.#onWaiting?.(this.#waiting);
  }

  /** Starts waiting admissions while the lane is open; when it rests, once the rest is over. */
  #dispatch(lane: Lane): void {
    while (lane.queues.size > 0 && lane.active < lane.slots) {
      const rest = lane.restUntil - performance.now();
      if (rest > 0) {
        lane.timer ??= setTimeout(() => {
          lane.timer = undefined;
          this.#dispatch(lane);
        }, rest).unref();
        return;
      }
      const next = lane.take()!;
      this.#left(next.source);
      next.grant(this.#hold(lane));
    }
  }

  #hold(lane: Lane): Release {
    lane.active++;
    const since = performance.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      lane.active--;
      if (lane.restMaxMs > 0) {
        const now = performance.now();
        lane.restUntil = now + Math.min(now - since, lane.restMaxMs);
      }
      this.#dispatch(lane);
    };
  }
}
