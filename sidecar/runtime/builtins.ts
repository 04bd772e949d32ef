/**
 * The Node built-ins the sidecar takes through `process.getBuiltinModule`
 * instead of an ESM import: the ESM facade of a built-in reads every export,
 * the lazy ones too, and loads what they need at start-up (node:http compiles
 * Node's internal undici, node:fs loads fs/promises and readline, node:crypto
 * WebCrypto, node:tls decodes every root certificate). Measured in
 * test/bench/README.md, "Start-up and idle memory" ("Loading only what is
 * used"), and the ones a pod's start does not need until after its first answer (node:os,
 * node:timers/promises). Other built-ins (node:net, node:dgram, …) are imported as
 * usual: their facades load nothing extra.
 */

const fs = process.getBuiltinModule('node:fs');

/** node:fs functions the sidecar uses. */
export const { readFileSync, readdirSync, watch, openSync, writeFileSync, fstatSync, statSync, closeSync } = fs;

/**
 * Reads from `fd` (at its current offset) into the start of `buffer` until `length` bytes or the end;
 * returns how many it read. One read may return fewer (a signal cuts a large read of a device short).
 */
export function readFully(fd: number, buffer: Uint8Array, length: number): number {
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buffer, done, length - done, null);
    if (n <= 0) break;
    done += n;
  }
  return done;
}

/**
 * node:crypto, loaded on the first call: SPKI pins of a DoT or DoH upstream and
 * the capture command's rule digest. Loading it loads 17 internal modules
 * (about 6 ms of the sidecar's start-up; test/bench/README.md, "What the
 * libraries cost"); the query IDs and the loop tag come from the kernel's
 * generator instead (runtime/random.ts).
 */
export function cryptoModule(): typeof import('node:crypto') {
  return process.getBuiltinModule('node:crypto');
}

/**
 * node:http, loaded on the first call: the metrics and admin servers start
 * after the DNS listeners serve (sidecar/server.ts), so loading it does not
 * delay the first answer.
 */
export function httpModule(): typeof import('node:http') {
  return process.getBuiltinModule('node:http');
}

/** node:tls, loaded on the first call: a sidecar without a DoT or DoH upstream never loads it. */
export function tlsModule(): typeof import('node:tls') {
  return process.getBuiltinModule('node:tls');
}

/** node:v8, loaded on the first call (the start-up heap compaction, after the sidecar serves). */
export function v8Module(): typeof import('node:v8') {
  return process.getBuiltinModule('node:v8');
}

/** node:os, loaded on the first call (the helper threads' renice, after the sidecar serves; the loop check of --upstream addresses). */
export function osModule(): typeof import('node:os') {
  return process.getBuiltinModule('node:os');
}

/** node:timers/promises, loaded on the first call (a DoH retry's pause, a /metrics rendering's yield). */
export function timersPromises(): typeof import('node:timers/promises') {
  return process.getBuiltinModule('node:timers/promises');
}

/** node:vm, loaded on the first call (the start-up heap compaction, after the sidecar serves). */
export function vmModule(): typeof import('node:vm') {
  return process.getBuiltinModule('node:vm');
}
