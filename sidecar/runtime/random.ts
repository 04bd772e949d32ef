/**
 * Random bytes for the sidecar's query IDs and loop tag, read from the
 * kernel's CSPRNG (`/dev/urandom`, the generator OpenSSL itself seeds from)
 * with node:fs, in blocks: the callers keep a pool (upstream/message.ts).
 *
 * Why not node:crypto's randomFillSync: loading node:crypto loads its 17
 * internal modules, about 6 ms of the sidecar's start-up and 0.5 MiB of its
 * RSS (test/bench/README.md, "What the libraries cost"), for a few random
 * bytes a second. Where the device cannot be opened (a sandbox
 * without /dev), node:crypto is the source, as before.
 */
import { cryptoModule, openSync, readFully } from './builtins.ts';

/** Fills `out` with bytes of a cryptographically secure generator. */
export type RandomFill = (out: Uint8Array | Uint16Array) => void;

/**
 * A {@link RandomFill} that reads `device` (default `/dev/urandom`), opened on
 * its first call and kept open; node:crypto's randomFillSync when the device
 * cannot be opened. A read error after that is thrown: no weaker source is
 * ever used in its place.
 */
export function randomSource(device = '/dev/urandom'): RandomFill {
  let fd: number | undefined;
  let fallback: RandomFill | undefined;
  return (out) => {
    if (fallback !== undefined) return fallback(out);
    if (fd === undefined) {
      try {
        fd = openSync(device, 'r');
      } catch {
        fallback = cryptoModule().randomFillSync;
        return fallback(out);
      }
    }
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    // A read of the device returns what was asked for; a signal can cut a large one short, so read on.
    if (readFully(fd, bytes, bytes.length) < bytes.length) throw new Error(`reading ${device}: got no bytes`);
  };
}

/** The process's random source. */
export const fillRandom: RandomFill = randomSource();

/** `n` random bytes in a new buffer. */
export function randomBytes(n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  fillRandom(out);
  return out;
}
