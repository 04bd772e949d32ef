/**
 * A value to come that runs its continuations the moment it settles, in the
 * same call, instead of through the microtask queue as a Promise does: the
 * pending answer of the query path (DESIGN §4). A forwarded miss goes through
 * one `then()` per stage that looks at the answer (cache, policy, the
 * composer's guards, metrics, the listener); as Promises that was eight
 * promises, eight reaction records, eight microtasks and their closures per
 * miss, about 2 KB of the ~5.4 KB a miss allocated (test/bench/README.md,
 * "Misses: the pipeline's promises").
 *
 * It is a PromiseLike: `await`, `Promise.resolve()` and `Promise.race()` take
 * it, and a `then()` callback may return a value, a Deferred or a Promise
 * (adopted, as a Promise adopts it). What it does not do as a Promise does:
 * - callbacks run synchronously, inside `resolve()`/`reject()`, or inside
 *   `then()` when it has settled already; code that settles a Deferred must
 *   be done with its own state first (the transports settle their receivers
 *   last for the same reason);
 * - a rejection nobody handles is not reported (no `unhandledRejection`):
 *   every consumer on the query path takes both outcomes, and the listener
 *   answers whatever comes back.
 */

const PENDING = 0;
const FULFILLED = 1;
const REJECTED = 2;
type State = typeof PENDING | typeof FULFILLED | typeof REJECTED;

/** Marks a deferred whose handlers take no argument (`then()`): `undefined` is a valid argument of `thenWith()`. */
const NO_ARG: unique symbol = Symbol('no argument');

type OnFulfilled<T, R> = ((value: T) => R | PromiseLike<R>) | null | undefined;
type OnRejected<R> = ((reason: unknown) => R | PromiseLike<R>) | null | undefined;

/**
 * `answer.then()` with handlers that take `arg` first; without a closure per call when `answer` is a
 * {@link Deferred} (the query path), through one when it is a Promise (a stage's rare async path).
 */
export function after<T, A, R1 = T, R2 = never>(
  answer: PromiseLike<T>,
  arg: A,
  onFulfilled: ((arg: A, value: T) => R1 | PromiseLike<R1>) | undefined,
  onRejected?: (arg: A, reason: unknown) => R2 | PromiseLike<R2>,
): PromiseLike<R1 | R2> {
  if (answer instanceof Deferred) return (answer as Deferred<T>).thenWith(arg, onFulfilled, onRejected);
  return answer.then(
    onFulfilled === undefined ? undefined : (value) => onFulfilled(arg, value),
    onRejected === undefined ? undefined : (reason: unknown) => onRejected(arg, reason),
  ) as PromiseLike<R1 | R2>;
}

/** A value to come, settled once; see the module comment. */
export class Deferred<T> implements PromiseLike<T> {
  #state: State = PENDING;
  #value: unknown = undefined;
  /** The deferreds made by `then()` while pending: one held inline (the query path's case), more in an array. */
  #waiting: Deferred<unknown> | Deferred<unknown>[] | undefined = undefined;
  /** This deferred's own handlers, when `then()` or `thenWith()` made it: run on its source's outcome. */
  #onFulfilled: ((value: unknown) => unknown) | ((arg: unknown, value: unknown) => unknown) | undefined = undefined;
  #onRejected: ((reason: unknown) => unknown) | ((arg: unknown, reason: unknown) => unknown) | undefined = undefined;
  /** The first argument of the handlers, when `thenWith()` made it (`NO_ARG` otherwise). */
  #arg: unknown = NO_ARG;

  /** A Deferred that follows `value`: settled with it, or with its outcome when it is a Promise or a Deferred. */
  static from<T>(value: T | PromiseLike<T>): Deferred<T> {
    if (value instanceof Deferred) return value as Deferred<T>;
    const d = new Deferred<T>();
    d.resolve(value);
    return d;
  }

  /** Whether it has settled (fulfilled or rejected). */
  get settled(): boolean {
    return this.#state !== PENDING;
  }

  /** Fulfills it with `value` (a Promise or a Deferred is followed); nothing once settled. */
  resolve(value: T | PromiseLike<T>): void {
    if (this.#state === PENDING) this.#adopt(value);
  }

  /** Rejects it with `reason`; nothing once settled. */
  reject(reason: unknown): void {
    if (this.#state === PENDING) this.#settle(REJECTED, reason);
  }

  then<R1 = T, R2 = never>(onFulfilled?: OnFulfilled<T, R1>, onRejected?: OnRejected<R2>): Deferred<R1 | R2> {
    const d = new Deferred<R1 | R2>();
    if (typeof onFulfilled === 'function') d.#onFulfilled = onFulfilled as (value: unknown) => unknown;
    if (typeof onRejected === 'function') d.#onRejected = onRejected;
    if (this.#state !== PENDING) d.#run(this.#state, this.#value);
    else this.#wait(d as Deferred<unknown>);
    return d;
  }

  /**
   * `then()` with handlers that take `arg` first: the query path's continuations are functions made once
   * (per stage, per listener) and get the query's context or address here, instead of a closure per query.
   */
  thenWith<A, R1 = T, R2 = never>(
    arg: A,
    onFulfilled: ((arg: A, value: T) => R1 | PromiseLike<R1>) | undefined,
    onRejected?: (arg: A, reason: unknown) => R2 | PromiseLike<R2>,
  ): Deferred<R1 | R2> {
    const d = new Deferred<R1 | R2>();
    d.#arg = arg;
    d.#onFulfilled = onFulfilled as ((arg: unknown, value: unknown) => unknown) | undefined;
    d.#onRejected = onRejected as ((arg: unknown, reason: unknown) => unknown) | undefined;
    if (this.#state !== PENDING) d.#run(this.#state, this.#value);
    else this.#wait(d as Deferred<unknown>);
    return d;
  }

  /** `then(undefined, onRejected)`. */
  catch<R = never>(onRejected?: OnRejected<R>): Deferred<T | R> {
    return this.then(undefined, onRejected);
  }

  #wait(d: Deferred<unknown>): void {
    const w = this.#waiting;
    if (w === undefined) this.#waiting = d;
    else if (Array.isArray(w)) w.push(d);
    else this.#waiting = [w, d];
  }

  /** Settles it with its source's outcome through its own handlers (none: the outcome passes through). */
  #run(state: State, value: unknown): void {
    const handler = state === FULFILLED ? this.#onFulfilled : this.#onRejected;
    const arg = this.#arg;
    this.#onFulfilled = this.#onRejected = undefined;
    this.#arg = NO_ARG;
    if (handler === undefined) {
      this.#settle(state, value);
      return;
    }
    let result: unknown;
    try {
      result = arg === NO_ARG ? (handler as (value: unknown) => unknown)(value) : (handler as (arg: unknown, value: unknown) => unknown)(arg, value);
    } catch (err) {
      this.#settle(REJECTED, err);
      return;
    }
    this.#adopt(result);
  }

  /** Fulfills with `value`, or follows it when it is a Deferred or another thenable. */
  #adopt(value: unknown): void {
    if (value instanceof Deferred) {
      if (value === this) {
        this.#settle(REJECTED, new TypeError('a Deferred cannot follow itself'));
      } else if (value.#state !== PENDING) {
        this.#settle(value.#state, value.#value);
      } else {
        // Followed with no handlers of its own: the outcome passes straight through.
        value.#wait(this as Deferred<unknown>);
      }
      return;
    }
    if (value instanceof Promise) {
      value.then(
        (v: unknown) => this.#adopt(v),
        (err: unknown) => this.#settle(REJECTED, err),
      );
      return;
    }
    this.#settle(FULFILLED, value);
  }

  #settle(state: State, value: unknown): void {
    if (this.#state !== PENDING) return;
    this.#state = state;
    this.#value = value;
    const w = this.#waiting;
    if (w === undefined) return;
    this.#waiting = undefined;
    if (Array.isArray(w)) {
      for (const d of w) d.#run(state, value);
    } else {
      w.#run(state, value);
    }
  }
}
