/**
 * Seeded randomness for fuzz tests: a failure is reproducible from the seed
 * the test prints (FUZZ_SEED replays it).
 */

/** mulberry32: a small seeded PRNG, so a failure is reproducible from the seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The fuzz seed: FUZZ_SEED from the environment, else `fallback`. */
export function fuzzSeed(fallback: number): number {
  const env = process.env.FUZZ_SEED;
  if (env !== undefined && /^\d+$/.test(env)) return Number(env) >>> 0;
  return fallback >>> 0;
}

/** A random integer in [0, n). */
export const pick = (rnd: () => number, n: number): number => Math.floor(rnd() * n);

/** `n` random bytes. */
export function randomBytesFrom(rnd: () => number, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) out[i] = pick(rnd, 256);
  return out;
}
