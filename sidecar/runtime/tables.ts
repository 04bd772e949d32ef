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
