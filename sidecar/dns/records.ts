/**
 * Reply scanning without dns-packet: one pass over an upstream's reply that
 * validates its layout and records what the forward and cache stages need
 * (TTL offsets, the minimum TTL, the negative-caching TTL, the OPT record).
 * No I/O. Compression pointers are followed only to check that each points
 * strictly backwards (no loops, no forward pointers reach a client).
 */
import * as packet from 'dns-packet';
import { EDNS_OPTION_EDE, HEADER_LENGTH, RRType } from './constants.ts';
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
 * The offset after the name at `offset`, or -1 when the name is malformed:
 * a reserved label type, a label or pointer past the end, more than 255
 * bytes expanded, or a compression pointer that does not point strictly
 * backwards into the message after the header (RFC 1035 §4.1.4: "a prior
 * occurrence"). Pointers are followed only to check them, so a pointer loop
 * or a forward pointer is caught here instead of reaching the client.
 */
export function checkedNameEnd(buf: Buffer, offset: number): number {
  let pos = offset;
  let end = -1;
  let expanded = 0;
  for (;;) {
    if (pos >= buf.length) return -1;
    const len = buf[pos]!;
    if (len === 0) return end < 0 ? pos + 1 : end;
    if ((len & 0xc0) === 0xc0) {
      if (pos + 2 > buf.length) return -1;
      const target = buf.readUInt16BE(pos) & 0x3fff;
      // Strictly backwards: following pointers always ends.
      if (target >= pos || target < HEADER_LENGTH) return -1;
      if (end < 0) end = pos + 2;
      pos = target;
      continue;
    }
    if (len > 63) return -1;
    expanded += 1 + len;
    if (expanded > 254 || pos + 1 + len > buf.length) return -1;
    pos += 1 + len;
  }
}

/** Offset of the first domain name inside the rdata of `type`, or -1 for types without one checked here. */
function rdataNameOffset(type: number): number {
  switch (type) {
    case RRType.NS:
    case RRType.CNAME:
    case RRType.PTR:
    case RRType.DNAME:
      return 0;
    case RRType.MX:
      return 2;
    case RRType.SRV:
      return 6;
    default:
      return -1;
  }
}

/**
 * Scans an upstream reply. Throws a {@link SidecarError} with code
 * UPSTREAM_BAD_REPLY when anything is malformed: a header shorter than 12
 * bytes, a name with a reserved label type or a compression pointer that is
 * not to prior data (owner names, and the names in NS, CNAME, PTR, DNAME, MX,
 * SRV and SOA data), a record or its data past the
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
    pos = checkedNameEnd(buf, pos);
    if (pos < 0 || pos + 4 > buf.length) bad(`question ${i + 1}: name is malformed or runs past the end of the message`);
    pos += 4;
  }
  const questionEnd = pos;

  const total = ancount + nscount + arcount;
  // Sized once (the cache keeps this array with its entry), no more than the bytes left can hold (11 per record):
  // the counts are the sender's word.
  const ttlOffsets: number[] = new Array<number>(Math.min(total, Math.floor((buf.length - pos) / 11)));
  let records = 0;
  let minTtl = -1;
  let negativeTtl = -1;
  let optStart = -1;
  let optEnd = -1;
  let rcode = flags & 0x0f;
  for (let i = 0; i < total; i++) {
    const nameStart = pos;
    pos = checkedNameEnd(buf, pos);
    if (pos < 0) bad(`record ${i + 1}: owner name is malformed or runs past the end`);
    if (pos + 10 > buf.length) bad(`record ${i + 1} runs past the end of the message`);
    const type = buf.readUInt16BE(pos);
    const rawTtl = buf.readUInt32BE(pos + 4);
    const rdataStart = pos + 10;
    const rdataEnd = rdataStart + buf.readUInt16BE(pos + 8);
    if (rdataEnd > buf.length) bad(`record ${i + 1} data runs past the end of the message`);
    const nameAt = rdataNameOffset(type);
    if (nameAt >= 0) {
      const after = checkedNameEnd(buf, rdataStart + nameAt);
      if (after < 0 || after > rdataEnd) bad(`record ${i + 1}: name in the record data is malformed`);
    }
    if (type === RRType.OPT) {
      if (i < ancount + nscount) bad('OPT record outside the additional section');
      if (optStart >= 0) bad('more than one OPT record');
      if (buf[nameStart] !== 0) bad('OPT record owner is not the root');
      optStart = nameStart;
      optEnd = rdataEnd;
      rcode = (buf[pos + 4]! << 4) | (flags & 0x0f);
    } else {
      const ttl = rawTtl > MAX_TTL ? 0 : rawTtl;
      ttlOffsets[records++] = pos + 4;
      if (minTtl < 0 || ttl < minTtl) minTtl = ttl;
      if (type === RRType.SOA && negativeTtl < 0 && i >= ancount && i < ancount + nscount) {
        negativeTtl = Math.min(ttl, soaMinimum(buf, rdataStart, rdataEnd, i + 1));
      }
    }
    pos = rdataEnd;
  }
  if (pos !== buf.length) bad(`${buf.length - pos} bytes after the last record (counts do not match the records)`);
  if (records < ttlOffsets.length) ttlOffsets.length = records; // the OPT record has none
  return { id, flags, rcode, questionEnd, ttlOffsets, minTtl, negativeTtl, optStart, optEnd, answerCount: ancount };
}

/** The MINIMUM field of SOA rdata in [start, end): MNAME and RNAME skipped, then five 32-bit fields. */
function soaMinimum(buf: Buffer, start: number, end: number, index: number): number {
  let pos = checkedNameEnd(buf, start);
  if (pos < 0 || pos > end) bad(`record ${index}: SOA MNAME is malformed`);
  pos = checkedNameEnd(buf, pos);
  if (pos < 0 || pos > end) bad(`record ${index}: SOA RNAME is malformed`);
  if (pos + 20 !== end) bad(`record ${index}: SOA data has ${end - pos} bytes after its names, expected 20`);
  const minimum = buf.readUInt32BE(pos + 16);
  return minimum > MAX_TTL ? 0 : minimum;
}

/** A reply and its {@link ReplyScan}, so later stages need not scan it again. */
export interface ScannedReply {
  readonly body: Buffer;
  readonly scan: ReplyScan;
}

/** What {@link edeOptions} returns when there are none, shared. */
const NO_OPTIONS = Buffer.alloc(0);

/**
 * The Extended DNS Error options (code 15, RFC 8914) of the OPT record whose
 * data is [start, end), concatenated as they are on the wire; an empty
 * buffer when there are none. Options that run past the data end the walk.
 */
export function edeOptions(buf: Buffer, start: number, end: number): Buffer {
  let found: Buffer[] | undefined;
  let pos = start;
  while (pos + 4 <= end) {
    const next = pos + 4 + buf.readUInt16BE(pos + 2);
    if (next > end) break;
    if (buf.readUInt16BE(pos) === EDNS_OPTION_EDE) (found ??= []).push(buf.subarray(pos, next));
    pos = next;
  }
  // Most replies carry none: no array and no new empty Buffer for them (a zero-length Buffer cannot be written to).
  if (!found) return NO_OPTIONS;
  return found.length === 1 ? found[0]! : Buffer.concat(found);
}

/**
 * The OPT record a pipeline body may carry: the upstream's, reduced to its
 * Extended DNS Error options, as the last record (see {@link stripOpt}).
 * Its owner, type, UDP size and TTL field (extended rcode, version, flags)
 * are the upstream's.
 */
function carriedOpt(buf: Buffer, optStart: number, ede: Buffer): Buffer {
  const out = Buffer.allocUnsafe(11 + ede.length);
  buf.copy(out, 0, optStart, optStart + 9);
  out.writeUInt16BE(ede.length, 9);
  ede.copy(out, 11);
  return out;
}

/**
 * The message as a pipeline body: its OPT record is hop by hop (RFC 6891
 * §6.1.1) and goes, except for the upstream's Extended DNS Errors, which the
 * client must still get (RFC 8914): when the OPT record holds EDE options,
 * it stays as the body's last record with those options only, and
 * finishReply (dns/reply.ts) moves them into the OPT record the client
 * gets; otherwise it is removed and ARCOUNT decremented. The returned scan
 * describes the returned body (its `rcode` stays the full rcode read with
 * the OPT record). Returns `buf` itself when there is no OPT record,
 * otherwise a new buffer. When the OPT record is the last record (the usual
 * case) the bytes before it are kept and every other offset of the scan
 * still holds; when records follow it, the message is rebuilt with
 * dns-packet so that their compression pointers stay valid, and scanned
 * again.
 */
export function stripOpt(buf: Buffer, scan: ReplyScan): ScannedReply {
  if (scan.optStart < 0) return { body: buf, scan };
  const ede = edeOptions(buf, scan.optStart + 11, scan.optEnd);
  const kept = ede.length > 0 ? carriedOpt(buf, scan.optStart, ede) : undefined;
  if (scan.optEnd === buf.length) {
    const out = Buffer.allocUnsafe(scan.optStart + (kept?.length ?? 0));
    buf.copy(out, 0, 0, scan.optStart);
    if (kept) {
      kept.copy(out, scan.optStart);
      return { body: out, scan: { ...scan, optEnd: out.length } };
    }
    out.writeUInt16BE(buf.readUInt16BE(10) - 1, 10);
    return { body: out, scan: { ...scan, optStart: -1, optEnd: -1 } };
  }
  let decoded: packet.Packet;
  try {
    decoded = packet.decode(buf);
  } catch (err) {
    throw new SidecarError(ErrorCodes.UPSTREAM_BAD_REPLY, 'decoding upstream reply to remove its OPT record', { cause: err });
  }
  decoded.additionals = (decoded.additionals ?? []).filter((r) => r.type !== 'OPT');
  let out = packet.encode(decoded);
  // dns-packet rebuilds the flags word from parts; keep the original bits.
  out.writeUInt16BE(scan.id, 0);
  out.writeUInt16BE(scan.flags, 2);
  if (kept) {
    out = Buffer.concat([out, kept]);
    out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  }
  return { body: out, scan: { ...scanReply(out), rcode: scan.rcode } };
}

/**
 * The uncompressed wire form of the name at `offset` (pointers followed) and
 * the offset after it where it is stored. The name must have passed
 * {@link checkedNameEnd}; throws UPSTREAM_BAD_REPLY otherwise.
 */
function expandName(buf: Buffer, offset: number): { wire: Buffer; end: number } {
  const end = checkedNameEnd(buf, offset);
  if (end < 0) bad(`name at ${offset} is malformed`);
  const parts: Buffer[] = [];
  let pos = offset;
  for (;;) {
    const len = buf[pos]!;
    if (len === 0) break;
    if ((len & 0xc0) === 0xc0) {
      pos = buf.readUInt16BE(pos) & 0x3fff;
      continue;
    }
    parts.push(buf.subarray(pos, pos + 1 + len));
    pos += 1 + len;
  }
  parts.push(Buffer.from([0]));
  return { wire: Buffer.concat(parts), end };
}

/**
 * `count` records of a scanned message starting at `offset`, each as stand-
 * alone wire bytes (owner, type, class, TTL, length, data) with every
 * compression pointer expanded: in the owner name and in the data of NS,
 * CNAME, PTR, DNAME, MX, SRV and SOA (RFC 3597 §4: other types' data is never
 * compressed and is copied as it is). The bytes of names are kept exactly,
 * whatever they hold, so records can be moved into another message (a split
 * zone's answer carries the records of its CNAME target this way).
 */
export function expandRecords(buf: Buffer, offset: number, count: number): { records: Buffer[]; end: number } {
  const records: Buffer[] = [];
  let pos = offset;
  for (let i = 0; i < count; i++) {
    const owner = expandName(buf, pos);
    pos = owner.end;
    if (pos + 10 > buf.length) bad(`record ${i + 1} runs past the end of the message`);
    const type = buf.readUInt16BE(pos);
    const fixed = buf.subarray(pos, pos + 8);
    const rdataStart = pos + 10;
    const rdataEnd = rdataStart + buf.readUInt16BE(pos + 8);
    if (rdataEnd > buf.length) bad(`record ${i + 1} data runs past the end of the message`);
    let rdata: Buffer;
    const nameAt = type === RRType.SOA ? 0 : rdataNameOffset(type);
    if (nameAt < 0) rdata = buf.subarray(rdataStart, rdataEnd);
    else {
      const prefix = buf.subarray(rdataStart, rdataStart + nameAt);
      const first = expandName(buf, rdataStart + nameAt);
      const parts = [prefix, first.wire];
      let rest = first.end;
      if (type === RRType.SOA) {
        const second = expandName(buf, rest);
        parts.push(second.wire);
        rest = second.end;
      }
      if (rest > rdataEnd) bad(`record ${i + 1}: data names run past the record`);
      parts.push(buf.subarray(rest, rdataEnd));
      rdata = Buffer.concat(parts);
    }
    const length = Buffer.allocUnsafe(2);
    length.writeUInt16BE(rdata.length, 0);
    records.push(Buffer.concat([owner.wire, fixed, length, rdata]));
    pos = rdataEnd;
  }
  return { records, end: pos };
}
