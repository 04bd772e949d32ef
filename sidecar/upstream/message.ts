/**
 * Helpers shared by the upstream transports: random message IDs, the reply
 * checks of RFC 5452 (ID, QR, question) and the errors they raise.
 * No I/O.
 */
import { ErrorCodes, SidecarError } from '../errors.ts';
import type { ErrorCode } from '../errors.ts';
import { skipName } from '../dns/wire.ts';
import { fillRandom } from '../runtime/random.ts';
import type { ExchangeSignal } from './upstream.ts';

const POOL_SIZE = 4096;
const idPool = new Uint16Array(POOL_SIZE);
let idNext = POOL_SIZE;

/**
 * A random 16-bit message ID from a pool of the kernel's CSPRNG (runtime/random.ts),
 * refilled in blocks of 4096 so the hot path does not read it per query (RFC 5452 §9.2).
 */
export function randomId(): number {
  if (idNext >= POOL_SIZE) {
    fillRandom(idPool);
    idNext = 0;
  }
  return idPool[idNext++]!;
}

/**
 * The end offset of the question section of `msg` (12 when QDCOUNT is 0), or
 * -1 when the message is shorter than a header or its question is malformed.
 * Question names may be compressed only in replies; a pointer ends the name.
 */
export function questionEnd(msg: Buffer): number {
  if (msg.length < 12) return -1;
  const qdcount = msg.readUInt16BE(4);
  let pos = 12;
  for (let q = 0; q < qdcount; q++) {
    pos = skipName(msg, pos);
    if (pos < 0) return -1;
    pos += 4;
    if (pos > msg.length) return -1;
  }
  return pos;
}

/**
 * Whether `reply` is a response (QR set) carrying the same question as
 * `query`: same QDCOUNT, names equal ignoring ASCII case, same type and class
 * (RFC 5452 §9.1). `qEnd` is `questionEnd(query)`. The ID is checked by the caller.
 */
export function matchesQuestion(query: Buffer, qEnd: number, reply: Buffer): boolean {
  if (reply.length < 12 || (reply[2]! & 0x80) === 0) return false;
  if (reply.readUInt16BE(4) !== query.readUInt16BE(4)) return false;
  if (reply.length < qEnd) return false;
  for (let i = 12; i < qEnd; i++) {
    let a = query[i]!;
    let b = reply[i]!;
    if (a === b) continue;
    if (a >= 0x41 && a <= 0x5a) a += 0x20;
    if (b >= 0x41 && b <= 0x5a) b += 0x20;
    if (a !== b) return false;
  }
  return true;
}

/** The RCODE (low 4 bits of the header; extended RCODEs are not combined) of a message, or -1 if too short. */
export function rcodeOf(msg: Buffer): number {
  return msg.length >= 12 ? msg[3]! & 0x0f : -1;
}

/** Whether the TC bit is set. */
export function truncated(msg: Buffer): boolean {
  return msg.length >= 12 && (msg[2]! & 0x02) !== 0;
}

/** A SidecarError for `action` against `address` ("reading reply from tls://…"). */
export function upstreamError(code: ErrorCode, action: string, address: string, cause?: unknown): SidecarError {
  return new SidecarError(code, `${action} ${address}`, cause === undefined ? undefined : { cause });
}

/**
 * The error for an aborted exchange: UPSTREAM_TIMEOUT when the signal's reason
 * is a TimeoutError (AbortSignal.timeout), else UPSTREAM_ABORTED.
 */
export function abortError(signal: ExchangeSignal, action: string, address: string): SidecarError {
  const reason: unknown = signal.reason;
  const timeout = reason instanceof Error && reason.name === 'TimeoutError';
  if (reason instanceof SidecarError && reason.code === ErrorCodes.UPSTREAM_TIMEOUT) {
    return upstreamError(ErrorCodes.UPSTREAM_TIMEOUT, action, address, reason);
  }
  return upstreamError(timeout ? ErrorCodes.UPSTREAM_TIMEOUT : ErrorCodes.UPSTREAM_ABORTED, action, address, reason);
}

/**
 * The question end of a query about to be sent. A query without a header or
 * a readable question is the caller's bug: INTERNAL.
 */
export function checkQuery(query: Buffer, address: string): number {
  const end = questionEnd(query);
  if (end < 0) {
    throw new SidecarError(ErrorCodes.INTERNAL, `sending a malformed query to ${address}`);
  }
  return end;
}

/** A transport's record of connections opened (+1) and closed (-1), for metrics. */
export type ConnectionHook = (upstream: string, delta: number) => void;
