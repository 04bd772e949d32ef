/**
 * Deadlines without a timer each: every query's group deadline used to be a
 * setTimeout of its own (a Timeout object and a closure per query, and a
 * clearTimeout when it was answered). Deadlines of one duration expire in the
 * order they were set, so each duration keeps a doubly linked list of them in
 * that order and one timer for its head; adding and removing are O(1) and
 * allocate nothing.
 *
 * The timer is not cleared when the list empties, nor the list dropped: at a
 * few thousand queries a second each answer empties the list and the next
 * query fills it again, and clearing meant a new Timeout, a new list and an
 * entry added to and deleted from two long-lived tables (ours and Node's
 * timer lists) per query, which V8 rehashes in its old generation
 * (test/bench/README.md, "Misses: Maps that empty and fill again"). The timer
 * stays armed for the deadline it was set for; when it fires it is set again
 * for the head, if the list has one, or else the list is dropped. While the
 * list is empty the timer does not keep the process alive (unref).
 */
import { monotonicMs } from '../runtime/clock.ts';

/** Something with a deadline: linked into one {@link DeadlineList} at a time. */
export interface Timed {
  /** monotonicMs() at which {@link expire} is due. */
  at: number;
  prev: Timed | null;
  next: Timed | null;
  /** Whether it is in a list now. */
  linked: boolean;
  /** Called once, from the list's timer, when `at` has passed. */
  expire(): void;
}

/** The deadlines of one duration, in the order they expire, under one timer. */
export class DeadlineList {
  readonly ms: number;
  #head: Timed | null = null;
  #tail: Timed | null = null;
  #timer: NodeJS.Timeout | undefined;
  /** Whether the timer keeps the event loop alive: while the list holds a deadline. */
  #refed = false;
  readonly #owner: Map<number, DeadlineList>;

  constructor(ms: number, owner: Map<number, DeadlineList>) {
    this.ms = ms;
    this.#owner = owner;
  }

  /** Links `t` to expire `ms` from now. */
  add(t: Timed): void {
    t.at = monotonicMs() + this.ms;
    t.prev = this.#tail;
    t.next = null;
    t.linked = true;
    if (this.#tail === null) this.#head = t;
    else this.#tail.next = t;
    this.#tail = t;
    // An armed timer is due no later than `t` (every deadline here is `ms` long): it re-arms for the head when it fires.
    if (this.#timer === undefined) this.#arm(this.ms);
    else if (!this.#refed) {
      this.#timer.ref();
      this.#refed = true;
    }
  }

  /** Unlinks `t` if it is linked (idempotent). */
  remove(t: Timed): void {
    if (!t.linked) return;
    t.linked = false;
    if (t.prev === null) this.#head = t.next;
    else t.prev.next = t.next;
    if (t.next === null) this.#tail = t.prev;
    else t.next.prev = t.prev;
    t.prev = t.next = null;
    if (this.#head === null) {
      this.#tail = null;
      if (this.#refed) {
        this.#timer!.unref();
        this.#refed = false;
      }
    }
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(this.#fire, Math.max(1, Math.ceil(ms)));
    this.#refed = true;
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#refed = false;
    const now = monotonicMs();
    let t = this.#head;
    while (t !== null && t.at <= now) {
      this.remove(t);
      t.expire();
      t = this.#head;
    }
    if (this.#head === null) {
      // Nothing left (an expire() that added a deadline here set the head): the list leaves its owner.
      if (this.#owner.get(this.ms) === this) this.#owner.delete(this.ms);
      return;
    }
    // An expire() may have added a deadline here, arming a timer for it; the head is due first.
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#arm(this.#head.at - now);
  };
}

const lists = new Map<number, DeadlineList>();

/** Links `t` to expire in `ms` milliseconds (a whole number); returns the list, which {@link DeadlineList.remove} it from. */
export function addDeadline(t: Timed, ms: number): DeadlineList {
  let list = lists.get(ms);
  if (list === undefined) lists.set(ms, (list = new DeadlineList(ms, lists)));
  list.add(t);
  return list;
}
