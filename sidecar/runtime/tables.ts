/**
 * Long-lived Maps and Sets that empty and fill again at every query. V8
 * allocates a table it rehashes (grows, shrinks) in the generation its old
 * table is in, so a Map that has survived two collections and goes from one
 * entry to none and back at every miss allocates straight into the old
 * generation each time: 200,000 such cycles grew the old space by 16 MiB and
 * ran three old-generation collections; taking a new Map when it empties, by
 * 3 KiB (test/bench/README.md, "Misses: Maps that empty and fill again").
 */

/** `map` without `key`: a new, empty Map instead of deleting its last entry. The caller keeps the result. */
export function mapWithout<K, V>(map: Map<K, V>, key: K): Map<K, V> {
  if (map.size === 1 && map.has(key)) return new Map();
  map.delete(key);
  return map;
}

/** `set` without `value`: a new, empty Set instead of deleting its last member. The caller keeps the result. */
export function setWithout<T>(set: Set<T>, value: T): Set<T> {
  if (set.size === 1 && set.has(value)) return new Set();
  set.delete(value);
  return set;
}

/** What an {@link IdTable} holds: something with a 16-bit DNS message ID. */
export interface WithId {
  readonly id: number;
}

/**
 * The exchanges in flight on one connection, by DNS message ID: a fixed
 * array probed linearly from the ID's low bits, that never grows, shrinks or
 * rehashes, and whose slot is cleared when an exchange leaves. A long-lived
 * Map is the wrong tool here: V8 rehashes a Map whose table is in the old
 * generation into a new old-generation table and leaves the old one, with its
 * pointers to the young exchanges that were in flight then, as garbage until
 * the next full collection; until then each of those pointers keeps its
 * exchange, and everything the exchange leads to (the query, its context,
 * its answer), alive through every young collection, so that it is promoted
 * (test/bench/README.md, "Misses: the pipeline's promises"). `capacity` must
 * exceed the most entries held at once; it is rounded up to a power of two.
 */
export class IdTable<T extends WithId> {
  readonly #slots: (T | undefined)[];
  readonly #mask: number;
  #size = 0;

  constructor(capacity: number) {
    let n = 8;
    while (n < capacity * 2) n *= 2;
    this.#slots = new Array<T | undefined>(n).fill(undefined);
    this.#mask = n - 1;
  }

  /** Entries held. */
  get size(): number {
    return this.#size;
  }

  get(id: number): T | undefined {
    const slots = this.#slots;
    for (let i = id & this.#mask; ; i = (i + 1) & this.#mask) {
      const e = slots[i];
      if (e === undefined || e.id === id) return e;
    }
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** Adds `entry` under its ID; throws when the ID is taken or the table is full (the caller keeps both from happening). */
  add(entry: T): void {
    if (this.#size >= this.#mask) throw new Error('IdTable full');
    const slots = this.#slots;
    let i = entry.id & this.#mask;
    for (let e = slots[i]; e !== undefined; e = slots[i]) {
      if (e.id === entry.id) throw new Error(`IdTable: ID ${entry.id} is taken`);
      i = (i + 1) & this.#mask;
    }
    slots[i] = entry;
    this.#size++;
  }

  /** Removes `entry` if it is the one held under its ID; whether it was. */
  remove(entry: T): boolean {
    const slots = this.#slots;
    const mask = this.#mask;
    let i = entry.id & mask;
    for (let e = slots[i]; e !== entry; e = slots[i]) {
      if (e === undefined) return false;
      i = (i + 1) & mask;
    }
    // Backward-shift deletion: the entries after the hole that probed past it move up, so no tombstones.
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const e = slots[j];
      if (e === undefined) break;
      const home = e.id & mask;
      // e may fill the hole at i when its home is not in the cyclic range (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        slots[i] = e;
        i = j;
      }
    }
    slots[i] = undefined;
    this.#size--;
    return true;
  }

  /** The entries held, in no particular order. */
  values(): T[] {
    const out: T[] = [];
    for (const e of this.#slots) if (e !== undefined) out.push(e);
    return out;
  }

  /** Removes every entry. */
  clear(): void {
    this.#slots.fill(undefined);
    this.#size = 0;
  }
}

/** A member of a {@link LinkedList}: its neighbours there. */
export interface ListLinks<T> {
  listPrev: T | null;
  listNext: T | null;
}

/**
 * A doubly linked list through its members' own fields: adding and removing
 * allocate nothing and need no table, for a long-lived collection of young
 * objects (the shutdown signal's followers, a UDP upstream's open sockets),
 * where a Set's rehashed tables would keep them alive (see {@link IdTable}).
 * A member is in one such list at a time.
 */
export class LinkedList<T extends ListLinks<T>> {
  head: T | null = null;
  size = 0;

  /** Adds `item` at the front. */
  add(item: T): void {
    item.listPrev = null;
    item.listNext = this.head;
    if (this.head !== null) this.head.listPrev = item;
    this.head = item;
    this.size++;
  }

  /** Removes `item` if it is in the list; whether it was. */
  remove(item: T): boolean {
    const { listPrev: prev, listNext: next } = item;
    if (prev !== null) prev.listNext = next;
    else if (this.head === item) this.head = next;
    else return false;
    if (next !== null) next.listPrev = prev;
    item.listPrev = item.listNext = null;
    this.size--;
    return true;
  }

  /** The members, front first (a copy: removing members while going through it is safe). */
  toArray(): T[] {
    const out: T[] = [];
    for (let item = this.head; item !== null; item = item.listNext) out.push(item);
    return out;
  }
}
