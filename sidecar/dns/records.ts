/**
 * Reply scanning without dns-packet: one pass over an upstream's reply that
 * validates its layout and records what the forward and cache stages need
 * (TTL offsets, the minimum TTL, the negative-caching TTL, the OPT record).
 * No I/O. Compression pointers are skipped, never followed.
 */
import * as packet from 'dns-packet';
import { Flags, HEADER_LENGTH, RRType } from './constants.ts';
import { skipName } from './wire.ts';
import { ErrorCodes, SidecarError } from '../errors.ts';

/** What {@link scanReply} learned from a well-formed reply. */
export interface ReplyScan {
  /** Message ID. */
  readonly id: number;
  /** The 16-bit flags word (QR, AA, TC, RD, RA, AD, CD, low rcode bits). */
  readonly flags: number;
  /** The full rcode: the header's 4 bits plus the OPT record's upper 8 bits (RFC 6891 §6.1.3). */
  readonly rcode: number;
  /** Offset just after the question section. */
  readonly questionEnd: number;
  /** Offset of each record's TTL field, in message order; the OPT record is excluded. */
  readonly ttlOffsets: readonly number[];
  /** Smallest TTL (seconds) over all non-OPT records; -1 when there are none. */
  readonly minTtl: number;
  /**
   * Seconds a negative answer may be cached: min(SOA TTL, SOA MINIMUM) of the
   * first SOA in the authority section (RFC 2308 §5); -1 without one.
   */
  readonly negativeTtl: number;
  /** Offset where the OPT record starts; -1 when there is none. */
  readonly optStart: number;
  /** Offset just after the OPT record; -1 when there is none. */
  readonly optEnd: number;
  /** ANCOUNT. */
  readonly answerCount: number;
}

/** The largest TTL a reader accepts; values with the top bit set read as 0 (RFC 2181 §8). */
const MAX_TTL = 0x7fffffff;

function bad(what: string): never {
  throw new SidecarError(ErrorCodes.UPSTREAM_BAD_REPLY, `scanning upstream reply: ${what}`);
}

/**
 * Scans an upstream reply. Throws a {@link SidecarError} with code
 * UPSTREAM_BAD_REPLY when anything is malformed: a header shorter than 12
 * bytes, a name with a reserved label type, a record or its data past the
 * end, counts that do not match the records present (trailing bytes
 * included), an OPT record outside the additional section, with a non-root
 * owner, or repeated, or an SOA whose data does not have its fixed shape.
 */
export function scanReply(buf: Buffer): ReplyScan {
  if (buf.length < HEADER_LENGTH) bad(`${buf.length} bytes, shorter than a DNS header`);
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  const qdcount = buf.readUInt16BE(4);
  const ancount = buf.readUInt16BE(6);
  const nscount = buf.readUInt16BE(8);
  const arcount = buf.readUInt16BE(10);

  let pos = HEADER_LENGTH;
  for (let i = 0; i < qdcount; i++) {
    pos = skipName(buf, pos);
    if (pos < 0 || pos + 4 > buf.length) bad(`question ${i + 1} runs past the end of the message`);
    pos += 4;
  }
  const questionEnd = pos;

  const ttlOffsets: number[] = [];
  let minTtl = -1;
  let negativeTtl = -1;
  let optStart = -1;
  let optEnd = -1;
  let rcode = flags & 0x0f;
  const total = ancount + nscount + arcount;
  for (let i = 0; i < total; i++) {
    const nameStart = pos;
    pos = skipName(buf, pos);
    if (pos < 0) bad(`record ${i + 1}: owner name is malformed or runs past the end`);
    if (pos + 10 > buf.length) bad(`record ${i + 1} runs past the end of the message`);
    const type = buf.readUInt16BE(pos);
    const rawTtl = buf.readUInt32BE(pos + 4);
    const rdataStart = pos + 10;
    const rdataEnd = rdataStart + buf.readUInt16BE(pos + 8);
    if (rdataEnd > buf.length) bad(`record ${i + 1} data runs past the end of the message`);
    if (type === RRType.OPT) {
      if (i < ancount + nscount) bad('OPT record outside the additional section');
      if (optStart >= 0) bad('more than one OPT record');
      if (buf[nameStart] !== 0) bad('OPT record owner is not the root');
      optStart = nameStart;
      optEnd = rdataEnd;
      rcode = (buf[pos + 4]! << 4) | (flags & 0x0f);
    } else {
      const ttl = rawTtl > MAX_TTL ? 0 : rawTtl;
      ttlOffsets.push(pos + 4);
      if (minTtl < 0 || ttl < minTtl) minTtl = ttl;
      if (type === RRType.SOA && negativeTtl < 0 && i >= ancount && i < ancount + nscount) {
        negativeTtl = Math.min(ttl, soaMinimum(buf, rdataStart, rdataEnd, i + 1));
      }
    }
    pos = rdataEnd;
  }
  if (pos !== buf.length) bad(`${buf.length - pos} bytes after the last record (counts do not match the records)`);
  return { id, flags, rcode, questionEnd, ttlOffsets, minTtl, negativeTtl, optStart, optEnd, answerCount: ancount };
}

/** The MINIMUM field of SOA rdata in [start, end): MNAME and RNAME skipped, then five 32-bit fields. */
function soaMinimum(buf: Buffer, start: number, end: number, index: number): number {
  let pos = skipName(buf, start);
  if (pos < 0 || pos > end) bad(`record ${index}: SOA MNAME is malformed`);
  pos = skipName(buf, pos);
  if (pos < 0 || pos > end) bad(`record ${index}: SOA RNAME is malformed`);
  if (pos + 20 !== end) bad(`record ${index}: SOA data has ${end - pos} bytes after its names, expected 20`);
  const minimum = buf.readUInt32BE(pos + 16);
  return minimum > MAX_TTL ? 0 : minimum;
}

/**
 * The message without its OPT record, ARCOUNT decremented. Returns `buf`
 * itself when there is no OPT record, otherwise a new buffer. When the OPT
 * record is the last record (the usual case) its bytes are cut off; when
 * records follow it, the message is rebuilt with dns-packet so that their
 * compression pointers stay valid.
 */
export function stripOpt(buf: Buffer, scan: ReplyScan): Buffer {
  if (scan.optStart < 0) return buf;
  if (scan.optEnd === buf.length) {
    const out = Buffer.allocUnsafe(scan.optStart);
    buf.copy(out, 0, 0, scan.optStart);
    out.writeUInt16BE(buf.readUInt16BE(10) - 1, 10);
    return out;
  }
  let decoded: packet.Packet;
  try {
    decoded = packet.decode(buf);
  } catch (err) {
    throw new SidecarError(ErrorCodes.UPSTREAM_BAD_REPLY, 'decoding upstream reply to remove its OPT record', { cause: err });
  }
  decoded.additionals = (decoded.additionals ?? []).filter((r) => r.type !== 'OPT');
  const out = packet.encode(decoded);
  // dns-packet rebuilds the flags word from parts; keep the original bits.
  out.writeUInt16BE(scan.id, 0);
  out.writeUInt16BE(scan.flags, 2);
  return out;
}

/**
 * Whether the reply's question is the query's: one question on each side,
 * the same QNAME compared case-insensitively (ASCII only, RFC 4343), the same
 * QTYPE and QCLASS (RFC 5452 §9.1). `queryQuestionEnd` is the offset after
 * the query's question ({@link ParsedQuery.questionEnd}).
 */
export function questionMatches(reply: Buffer, scan: ReplyScan, query: Buffer, queryQuestionEnd: number): boolean {
  if (reply.readUInt16BE(4) !== 1) return false;
  if (scan.questionEnd !== queryQuestionEnd || query.length < queryQuestionEnd || reply.length < queryQuestionEnd) return false;
  let pos = HEADER_LENGTH;
  const nameEnd = queryQuestionEnd - 4;
  while (pos < nameEnd) {
    const len = reply[pos]!;
    if (len !== query[pos] || len > 63) return false;
    if (len === 0) return pos + 1 === nameEnd && sameTail(reply, query, nameEnd);
    const end = pos + 1 + len;
    if (end > nameEnd) return false;
    for (let i = pos + 1; i < end; i++) {
      let a = reply[i]!;
      let b = query[i]!;
      if (a >= 0x41 && a <= 0x5a) a += 0x20;
      if (b >= 0x41 && b <= 0x5a) b += 0x20;
      if (a !== b) return false;
    }
    pos = end;
  }
  return false;
}

function sameTail(reply: Buffer, query: Buffer, at: number): boolean {
  return reply.readUInt32BE(at) === query.readUInt32BE(at);
}

/** Whether the reply's TC bit is set. */
export function isTruncated(scan: ReplyScan): boolean {
  return (scan.flags & Flags.TC) !== 0;
}
