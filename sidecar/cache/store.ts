/**
 * The cache store: upstream replies kept as wire bytes with the offsets of
 * their TTLs, bounded by entries and by bytes with LRU eviction, timed by an
 * injected clock. No I/O (DESIGN §2, §4).
 *
 * A hit is one allocation and one copy: the stored bytes are copied and each
 * TTL is decremented by the whole seconds elapsed since the entry was stored.
 * Nothing is decoded.
 *
 * An entry is two objects in V8's heap, the entry and one string that holds
 * the reply's bytes and its TTL offsets (a byte per character), and nothing
 * outside it: a Buffer per entry was two more objects, a backing store in
 * malloc's arena and an ArrayBuffer that V8 tracks and sweeps, and with every
 * miss stored that made the cache most of what the garbage collector promoted
 * and swept under a stream of misses (test/bench/README.md, "Misses: the
 * cache's share of the garbage collector"). Times are kept relative to the
 * store's creation, so that they stay small integers (V8 stores a number
 * above 2^31 as an object of its own).
 */
import type { Static } from '@sinclair/typebox';
import type { CacheConfigSchema } from '../config/schema.ts';
import { Flags, RCode } from '../dns/constants.ts';
import type { ReplyScan } from '../dns/records.ts';

/** The cache's limits and TTL clamps, as in the sidecar config (`cache.*`). */
export type CacheConfig = Static<typeof CacheConfigSchema>;

/** Why an entry left the store; see {@link CacheStoreOptions.onEvict}. */
export type EvictReason = 'capacity' | 'expired';

/** Options of {@link CacheStore}. */
export interface CacheStoreOptions {
  /** Limits and TTL clamps. `maxEntries` 0 switches the store off (nothing is kept). */
  readonly config: CacheConfig;
  /** The clock, in milliseconds (any epoch); defaults to `Date.now`. Tests inject one. */
  readonly now?: () => number;
  /**
   * Seconds an expired entry is kept to be served stale by {@link CacheStore.getStale}
   * (RFC 8767 §5 suggests 1 to 3 days). 0, the default, switches serve-stale off:
   * expired entries are dropped when next looked up.
   */
  readonly staleMaxAgeSec?: number;
  /** Most stale answers served from one entry per second; 0, the default, means no cap. */
  readonly staleMaxPerSecond?: number;
  /** Called once for every entry evicted to make room (`capacity`) or dropped because it expired. */
  readonly onEvict?: (reason: EvictReason) => void;
}

/** Options of {@link CacheStore.set}. */
export interface SetOptions {
  /** Seconds: the cap on negative caching for this entry instead of `negativeMaxTtl` (the cluster zone's). */
  readonly negativeCap?: number;
  /** The names the reply leads to besides the question (Outcome.names), given back with every hit. */
  readonly names?: readonly string[];
}

/** Facts about a hit, filled in by {@link CacheStore.get} when the caller passes an object. */
export interface HitInfo {
  /** The reply's rcode (NOERROR or NXDOMAIN). */
  rcode: number;
  /** Offset just after the stored question. */
  questionEnd: number;
  /** Whole seconds the entry stays fresh. */
  remainingTtl: number;
  /** The names the reply leads to besides the question, as stored ({@link SetOptions.names}). */
  names?: readonly string[] | undefined;
  /**
   * Whether the store holds any entry of the name, fresh or not, of any type: set on a miss too, so that a
   * caller whose lookup found nothing under the name skips asking about its other entries.
   */
  named?: boolean;
}

/** Counters of {@link CacheStore.stats}. */
export interface CacheStats {
  /** Entries held, stale ones included. */
  readonly entries: number;
  /** Bytes of stored replies held, stale ones included. */
  readonly bytes: number;
  /** Lookups answered by a fresh entry. */
  readonly hits: number;
  /** Lookups without a fresh entry. */
  readonly misses: number;
  /** Entries evicted (least recently used first) to stay within `maxEntries` and `maxBytes`. */
  readonly evictions: number;
  /** Entries dropped because they expired (past the stale window when serve-stale is on). */
  readonly expired: number;
  /** Stale answers served (RFC 8767). */
  readonly staleServed: number;
}

/** The TTL written into stale answers, in seconds (RFC 8767 §4). */
export const STALE_TTL = 30;

/** One stored reply, linked into the LRU list (head: most recently used) and into its name's chain. */
class Entry {
  readonly name: string;
  readonly sub: number;
  /** The next entry with the same name (another type, class or DO/CD combination). */
  sibling: Entry | null = null;
  /**
   * A private copy of the reply with the clamped TTLs written in (read back from here on each hit),
   * one character per byte, followed by the offset of each TTL field as two characters (high byte, low byte).
   */
  readonly data: string;
  /** The reply's length: the characters of `data` before the offsets. */
  readonly size: number;
  /** On the store's clock ({@link CacheStore}'s `#clock`), in milliseconds. */
  readonly storedAt: number;
  readonly expiresAt: number;
  readonly questionEnd: number;
  /** The names the reply leads to besides the question; undefined for most replies. */
  names: readonly string[] | undefined = undefined;
  prev: Entry | null = null;
  next: Entry | null = null;
  /** The second (clock / 1000) of the last stale answer and how many were served in it. */
  staleSecond = -1;
  staleCount = 0;

  constructor(name: string, sub: number, data: string, size: number, storedAt: number, expiresAt: number, questionEnd: number) {
    this.name = name;
    this.sub = sub;
    this.data = data;
    this.size = size;
    this.storedAt = storedAt;
    this.expiresAt = expiresAt;
    this.questionEnd = questionEnd;
  }
}

/**
 * A bounded reply cache. An entry's key is a name (the query name, as the
 * wire reader spells it) and a number that tells apart the entries of one
 * name (the cache stage packs type, class and the DO and CD bits into it,
 * see `subKey` in stage.ts). Two parts rather than one string because a
 * hit then hashes only the name the wire reader already made, instead of
 * building and hashing a new key string on every query.
 * Values are reply bodies (no OPT record) with their {@link ReplyScan}.
 */
export class CacheStore {
  readonly #config: CacheConfig;
  readonly #now: () => number;
  /** The clock's reading when the store was made: entries' times are kept relative to it. */
  readonly #epoch: number;
  readonly #staleMaxAgeMs: number;
  readonly #staleMaxPerSecond: number;
  readonly #onEvict: ((reason: EvictReason) => void) | undefined;
  /** Name → the first entry of its chain. */
  readonly #map = new Map<string, Entry>();
  #entries = 0;
  #head: Entry | null = null;
  #tail: Entry | null = null;
  #bytes = 0;
  #hits = 0;
  #misses = 0;
  #evictions = 0;
  #expired = 0;
  #staleServed = 0;

  constructor(options: CacheStoreOptions) {
    this.#config = options.config;
    this.#now = options.now ?? Date.now;
    this.#epoch = this.#now();
    this.#staleMaxAgeMs = Math.max(0, options.staleMaxAgeSec ?? 0) * 1000;
    this.#staleMaxPerSecond = Math.max(0, options.staleMaxPerSecond ?? 0);
    this.#onEvict = options.onEvict;
  }

  /** Whether expired entries are kept for serve-stale. */
  get serveStale(): boolean {
    return this.#staleMaxAgeMs > 0;
  }

  /**
   * Seconds `body` may be cached, 0 when it must not be:
   * - TC set, or an rcode other than NOERROR and NXDOMAIN: 0;
   * - a positive answer (NOERROR with answers): its smallest TTL clamped to [minTtl, maxTtl];
   * - NXDOMAIN or NODATA (NOERROR, no answers): min(SOA TTL, SOA MINIMUM) of the
   *   authority's SOA (RFC 2308 §5), capped by `negativeCap` (default
   *   `negativeMaxTtl`) and by every other record's TTL; 0 without an SOA.
   */
  lifetime(scan: ReplyScan, negativeCap?: number): number {
    if (scan.flags & Flags.TC) return 0;
    const cfg = this.#config;
    if (scan.rcode === RCode.NOERROR && scan.answerCount > 0) {
      if (scan.minTtl < 0) return 0;
      return Math.min(Math.max(scan.minTtl, cfg.minTtl), cfg.maxTtl);
    }
    if (scan.rcode === RCode.NXDOMAIN || scan.rcode === RCode.NOERROR) {
      if (scan.negativeTtl < 0) return 0;
      return Math.max(0, Math.min(scan.negativeTtl, negativeCap ?? cfg.negativeMaxTtl, scan.minTtl));
    }
    return 0;
  }

  /**
   * Stores a private copy of `body` under (`name`, `sub`) for {@link lifetime} seconds,
   * with each record's TTL clamped (positive answers: to [minTtl, maxTtl];
   * negative answers: to at most the lifetime) and written into the copy.
   * Replaces an entry with the same key. Returns the lifetime in seconds, or
   * 0 when the reply was not cached (not cacheable, TTL 0, larger than
   * `maxBytes`, or the store is off).
   */
  set(name: string, sub: number, body: Buffer, scan: ReplyScan, options?: SetOptions): number {
    const cfg = this.#config;
    if (cfg.maxEntries <= 0 || body.length > cfg.maxBytes) return 0;
    const lifetime = this.lifetime(scan, options?.negativeCap);
    if (lifetime <= 0) return 0;
    const positive = scan.rcode === RCode.NOERROR && scan.answerCount > 0;

    // The copy is made in a scratch buffer (clamped TTLs, then the offsets) and kept as a string.
    const size = body.length;
    const offsets = scan.ttlOffsets;
    const work = scratchFor(size + 2 * offsets.length);
    body.copy(work, 0);
    for (let i = 0; i < offsets.length; i++) {
      const at = offsets[i]!;
      let ttl = work.readUInt32BE(at);
      if (ttl > 0x7fffffff) ttl = 0;
      ttl = positive ? Math.min(Math.max(ttl, cfg.minTtl), cfg.maxTtl) : Math.min(ttl, lifetime);
      work.writeUInt32BE(ttl, at);
      work.writeUInt16BE(at, size + 2 * i);
    }
    const data = work.toString('latin1', 0, size + 2 * offsets.length);

    // One lookup of the name for both the entry replaced and the chain the new one heads.
    let first = this.#map.get(name);
    const old = inChain(first, sub);
    if (old !== undefined) {
      this.#remove(old);
      first = this.#map.get(name);
    }
    const now = this.#clock();
    const entry = new Entry(name, sub, data, size, now, now + lifetime * 1000, scan.questionEnd);
    entry.names = options?.names;
    entry.sibling = first ?? null;
    this.#map.set(name, entry);
    this.#entries++;
    this.#pushFront(entry);
    this.#bytes += size;
    while (this.#entries > cfg.maxEntries || this.#bytes > cfg.maxBytes) {
      const victim = this.#tail!;
      this.#remove(victim);
      this.#evictions++;
      this.#onEvict?.('capacity');
    }
    return lifetime;
  }

  /**
   * The fresh entry for (`name`, `sub`) as a new buffer the caller owns: a copy of the
   * stored reply with every TTL decremented by the whole seconds elapsed.
   * The caller writes the ID and the question. Undefined on a miss (no entry,
   * or an expired one, which stays for {@link getStale} when serve-stale is
   * on). `info`, when given, receives facts about the hit.
   */
  get(name: string, sub: number, info?: HitInfo): Buffer | undefined {
    const first = this.#map.get(name);
    if (info !== undefined) info.named = first !== undefined;
    const entry = inChain(first, sub);
    if (entry === undefined) {
      this.#misses++;
      return undefined;
    }
    const now = this.#clock();
    if (now >= entry.expiresAt) {
      if (now - entry.expiresAt >= this.#staleMaxAgeMs) this.#expire(entry);
      this.#misses++;
      return undefined;
    }
    this.#hits++;
    this.#touch(entry);
    const data = entry.data;
    const out = copyOut(entry);
    const elapsed = Math.floor((now - entry.storedAt) / 1000);
    if (elapsed > 0) {
      for (let o = entry.size; o < data.length; o += 2) {
        const at = ttlOffsetAt(data, o);
        const left = readTtl(data, at) - elapsed;
        writeTtl(out, at, left > 0 ? left : 0);
      }
    }
    if (info !== undefined) {
      info.rcode = data.charCodeAt(3) & 0x0f;
      info.questionEnd = entry.questionEnd;
      info.remainingTtl = Math.floor((entry.expiresAt - now) / 1000);
      info.names = entry.names;
    }
    return out;
  }

  /**
   * Whether a fresh NXDOMAIN is stored for (`name`, `sub`). Counts nothing:
   * the cache stage asks it after a miss, to answer the other address type
   * of a name that does not exist (RFC 8020 §2).
   */
  hasNxdomain(name: string, sub: number): boolean {
    const entry = this.#find(name, sub);
    return entry !== undefined && this.#clock() < entry.expiresAt && (entry.data.charCodeAt(3) & 0x0f) === RCode.NXDOMAIN;
  }

  /**
   * Whether an expired entry for (`name`, `sub`) could be served stale now
   * (serve-stale on, within the stale window). Counts nothing.
   */
  hasStale(name: string, sub: number): boolean {
    if (this.#staleMaxAgeMs <= 0) return false;
    const entry = this.#find(name, sub);
    if (entry === undefined) return false;
    const now = this.#clock();
    return now >= entry.expiresAt && now - entry.expiresAt < this.#staleMaxAgeMs;
  }

  /**
   * An expired entry for (`name`, `sub`) served stale (RFC 8767): a copy with every TTL
   * set to {@link STALE_TTL}. Undefined when serve-stale is off, there is no
   * expired entry within the stale window, or this entry already served
   * `staleMaxPerSecond` stale answers in the current second. `info` as in {@link get}.
   */
  getStale(name: string, sub: number, info?: HitInfo): Buffer | undefined {
    if (this.#staleMaxAgeMs <= 0) return undefined;
    const entry = this.#find(name, sub);
    if (entry === undefined) return undefined;
    const now = this.#clock();
    if (now < entry.expiresAt) return undefined;
    if (now - entry.expiresAt >= this.#staleMaxAgeMs) {
      this.#expire(entry);
      return undefined;
    }
    if (this.#staleMaxPerSecond > 0) {
      const second = Math.floor(now / 1000);
      if (entry.staleSecond !== second) {
        entry.staleSecond = second;
        entry.staleCount = 0;
      }
      if (entry.staleCount >= this.#staleMaxPerSecond) return undefined;
      entry.staleCount++;
    }
    this.#staleServed++;
    this.#touch(entry);
    const data = entry.data;
    const out = copyOut(entry);
    for (let o = entry.size; o < data.length; o += 2) writeTtl(out, ttlOffsetAt(data, o), STALE_TTL);
    if (info !== undefined) {
      info.rcode = out[3]! & 0x0f;
      info.questionEnd = entry.questionEnd;
      info.remainingTtl = 0;
      info.names = entry.names;
    }
    return out;
  }

  /**
   * Removes the entry for (`name`, `sub`), or every entry of `name` when
   * `sub` is omitted; returns how many were removed.
   */
  delete(name: string, sub?: number): number {
    if (sub !== undefined) {
      const entry = this.#find(name, sub);
      if (entry === undefined) return 0;
      this.#remove(entry);
      return 1;
    }
    let n = 0;
    for (let entry = this.#map.get(name); entry !== undefined; entry = this.#map.get(name)) {
      this.#remove(entry);
      n++;
    }
    return n;
  }

  /** Removes every entry (counters other than entries and bytes are kept). Returns how many were removed. */
  flush(): number {
    const n = this.#entries;
    this.#map.clear();
    this.#entries = 0;
    this.#head = this.#tail = null;
    this.#bytes = 0;
    return n;
  }

  /** Drops every entry past its lifetime and stale window; returns how many. For a periodic sweep. */
  prune(): number {
    const now = this.#clock();
    let n = 0;
    for (let entry = this.#tail; entry !== null; ) {
      const prev = entry.prev;
      if (now >= entry.expiresAt && now - entry.expiresAt >= this.#staleMaxAgeMs) {
        this.#expire(entry);
        n++;
      }
      entry = prev;
    }
    return n;
  }

  /** Entries held, stale ones included. */
  get size(): number {
    return this.#entries;
  }

  /** A snapshot of the counters. */
  stats(): CacheStats {
    return {
      entries: this.#entries,
      bytes: this.#bytes,
      hits: this.#hits,
      misses: this.#misses,
      evictions: this.#evictions,
      expired: this.#expired,
      staleServed: this.#staleServed,
    };
  }

  /** Milliseconds since the store was made, on the injected clock. */
  #clock(): number {
    return this.#now() - this.#epoch;
  }

  #expire(entry: Entry): void {
    this.#remove(entry);
    this.#expired++;
    this.#onEvict?.('expired');
  }

  /** The entry for (`name`, `sub`): a map lookup, then a walk of the name's short chain. */
  #find(name: string, sub: number): Entry | undefined {
    return inChain(this.#map.get(name), sub);
  }


  #remove(entry: Entry): void {
    const first = this.#map.get(entry.name)!;
    if (first === entry) {
      if (entry.sibling === null) this.#map.delete(entry.name);
      else this.#map.set(entry.name, entry.sibling);
    } else {
      let before = first;
      while (before.sibling !== entry) before = before.sibling!;
      before.sibling = entry.sibling;
    }
    entry.sibling = null;
    this.#entries--;
    this.#bytes -= entry.size;
    if (entry.prev) entry.prev.next = entry.next;
    else this.#head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else this.#tail = entry.prev;
    entry.prev = entry.next = null;
  }

  #pushFront(entry: Entry): void {
    entry.prev = null;
    entry.next = this.#head;
    if (this.#head) this.#head.prev = entry;
    this.#head = entry;
    if (this.#tail === null) this.#tail = entry;
  }

  #touch(entry: Entry): void {
    if (this.#head === entry) return;
    // Unlink (entry is not the head, so prev is set), then push to the front.
    entry.prev!.next = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else this.#tail = entry.prev;
    this.#pushFront(entry);
  }
}

/** The entry for `sub` in the chain of one name's entries that starts at `first`: a walk of a short chain. */
function inChain(first: Entry | undefined, sub: number): Entry | undefined {
  let entry = first;
  while (entry !== undefined && entry.sub !== sub) entry = entry.sibling ?? undefined;
  return entry;
}

/** A new buffer holding the entry's reply (its data up to `size`), for the caller to patch and own. */
function copyOut(entry: Entry): Buffer {
  const out = Buffer.allocUnsafe(entry.size);
  out.write(entry.data, 0, entry.size, 'latin1');
  return out;
}

/** The TTL offset stored at `o` of an entry's data (past `size`: two characters each, high byte first). */
function ttlOffsetAt(data: string, o: number): number {
  return (data.charCodeAt(o) << 8) | data.charCodeAt(o + 1);
}

/** The TTL at `at` of an entry's data (stored clamped, so below 2^31). */
function readTtl(data: string, at: number): number {
  return (data.charCodeAt(at) << 24) | (data.charCodeAt(at + 1) << 16) | (data.charCodeAt(at + 2) << 8) | data.charCodeAt(at + 3);
}

/** Where {@link CacheStore.set} builds an entry's data before it is kept as a string: one buffer, grown to the largest seen. */
let scratch = Buffer.allocUnsafeSlow(1024);

function scratchFor(length: number): Buffer {
  if (scratch.length < length) scratch = Buffer.allocUnsafeSlow(length);
  return scratch;
}

/** Writes a 32-bit big-endian TTL without bounds checks (offsets come from a scan of this very buffer). */
function writeTtl(buf: Buffer, at: number, ttl: number): void {
  buf[at] = ttl >>> 24;
  buf[at + 1] = (ttl >>> 16) & 0xff;
  buf[at + 2] = (ttl >>> 8) & 0xff;
  buf[at + 3] = ttl & 0xff;
}
