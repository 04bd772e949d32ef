/**
 * Waiting on events instead of time windows (DESIGN §7): gates a scripted
 * server or chain holds a query at until the test lets it go, and reference
 * timers that order a production timer without waiting on the clock.
 */
import type { Socket } from 'node:net';

/** One gate: who arrived at it, and whether it is open. */
interface Gate {
  readonly arrived: PromiseWithResolvers<void>;
  readonly opened: PromiseWithResolvers<void>;
}

/**
 * Named gates. Code under test's stand-ins (a scripted chain, a test DNS
 * server's handler) call `pass(key)` and wait there; the test learns that
 * something waits (`arrived(key)`) and lets it through (`open(key)`). Once
 * open, a gate stays open.
 */
export class Gates {
  readonly #gates = new Map<string, Gate>();

  #gate(key: string): Gate {
    let g = this.#gates.get(key);
    if (!g) {
      g = { arrived: Promise.withResolvers<void>(), opened: Promise.withResolvers<void>() };
      this.#gates.set(key, g);
    }
    return g;
  }

  /** Arrives at gate `key` and resolves once the test opens it. */
  pass(key: string): Promise<void> {
    const g = this.#gate(key);
    g.arrived.resolve();
    return g.opened.promise;
  }

  /** Resolves once something has arrived at gate `key`. */
  arrived(key: string): Promise<void> {
    return this.#gate(key).arrived.promise;
  }

  /** Opens gate `key`: what waits there, and whatever comes later, goes through. */
  open(key: string): void {
    this.#gate(key).opened.resolve();
  }

  /** Opens every gate arrived at so far (for `t.after`, so nothing stays held). */
  openAll(): void {
    for (const g of this.#gates.values()) g.opened.resolve();
  }
}

/** A started reference timer: see {@link referenceTimer}. */
export interface ReferenceTimer {
  /** Whether the timer has fired. */
  readonly fired: boolean;
  /** Stops it (for `t.after`). */
  cancel(): void;
}

/**
 * A timer that only records that it fired, for ordering a timer of the code
 * under test against it: the timers of one process fire in the order they
 * expire however late the process gets to run, so "the deadline fired before
 * a reference of `ms` started just before it" holds on a loaded machine where
 * "it took less than `ms`" does not. Only for code whose outcome follows its
 * own timer without I/O in between; never a wait.
 */
export function referenceTimer(ms: number): ReferenceTimer {
  const state = { fired: false };
  const timer = setTimeout(() => (state.fired = true), ms);
  return {
    get fired() {
      return state.fired;
    },
    cancel: () => clearTimeout(timer),
  };
}

/** What {@link connectionEvents} records. */
export interface ConnectionEvents {
  /** +1 per connection opened, -1 per connection closed, in order. */
  readonly events: number[];
  /** The transport's connection hook (`onConnection`). */
  readonly hook: (upstream: string, delta: number) => void;
  /** Resolves when a connection has closed. */
  readonly closed: Promise<void>;
}

/** Records an upstream transport's connections opening and closing, to wait for a close instead of sleeping past an idle timeout. */
export function connectionEvents(): ConnectionEvents {
  const events: number[] = [];
  const closed = Promise.withResolvers<void>();
  return {
    events,
    hook: (_upstream, delta) => {
      events.push(delta);
      if (delta < 0) closed.resolve();
    },
    closed: closed.promise,
  };
}

/** Resolves with everything the peer sent on `socket` once the socket has closed (by either side). */
export function untilClosed(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
    socket.on('error', () => {});
    if (socket.destroyed) resolve(data);
    else socket.once('close', () => resolve(data));
  });
}

/**
 * Resolves once `check` holds, checked every 5 ms; rejects after `timeoutMs`
 * naming `what`. Only for a state of the code under test that has no event of
 * its own to wait on (a queue's length, a gauge).
 */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
